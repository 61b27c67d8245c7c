"""Configuration of the cleaning suite: each step is a dict of its arguments, or null to switch it off."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _on(**defaults: Any):
    return field(default_factory=lambda: dict(defaults))


@dataclass
class CleaningConfig:
    """The steps run in this order on every document; dedup then runs across the whole corpus.

    html: main text of HTML documents (`extractor`: resiliparse | trafilatura; `main_content`); code blocks
        (`<pre>`) come out fenced with ```.
    gutenberg: cut Project Gutenberg license headers and footers.
    normalize: ftfy repair, `normalization` (NFC), invisible characters, whitespace, `strip_symbols`.
    length: `min_chars` / `max_chars` per document ("empty", "too_short", "too_long": a 200 MB
        single-line file would only exhaust memory).
    profile: the quality rules for a kind of text: auto (chosen per document), web, books, docs or dialogue
        (`lightning_llm.data.cleaning.profiles`).
    units: `max_chars`: longer documents are cut into sections of about this size and judged section by
        section (null: judged whole).
    c4_lines, gopher_quality, gopher_repetition: arguments of datatrove's C4QualityFilter,
        GopherQualityFilter and GopherRepetitionFilter that replace the profile's (an argument set to None
        keeps the profile's value; the whole rule set to None is off).
    language: `languages` and `min_score` for langid.py (off by default).
    pii: replacement tokens for `email`, `ip`, `phone` (null leaves that kind alone).
    exact_dedup: drop documents whose normalized text already occurred.
    near_dedup: MinHash + LSH near-duplicate removal (`threshold` Jaccard, `n_grams`, `hashes_per_bucket`).
    warn_drop_fraction: a step that drops more than this share of a split's characters is warned about
        (its top reasons and the keys to relax) and marked in the report.
    max_drop_fraction: the same as an error (null: warnings only).
    write_dropped: write dropped documents with their reason under `cleaning/dropped/`.
    tasks: input shards processed in parallel (default: one per input file, at most 64).
    executor: null runs datatrove's LocalPipelineExecutor with `data.num_proc` workers; a dict with
        `_target_` (e.g. datatrove.executor.SlurmPipelineExecutor and its arguments) runs elsewhere.
    """

    html: dict | None = _on(extractor="resiliparse", main_content=True)
    gutenberg: dict | None = _on()
    normalize: dict | None = _on(fix_unicode=True, normalization="NFC", max_blank_lines=2, strip_symbols=None)
    length: dict | None = _on(min_chars=1, max_chars=200_000_000)
    profile: str = "auto"
    units: dict | None = _on(max_chars=20_000)
    c4_lines: dict | None = _on()
    gopher_quality: dict | None = _on()
    gopher_repetition: dict | None = _on()
    language: dict | None = None
    pii: dict | None = _on(email="<EMAIL>", ip="<IP>", phone="<PHONE>")
    exact_dedup: bool = True
    near_dedup: dict | None = _on(threshold=0.8, n_grams=5, hashes_per_bucket=8)
    warn_drop_fraction: float = 0.3
    max_drop_fraction: float | None = None
    write_dropped: bool = False
    tasks: int | None = None
    executor: dict | None = None
