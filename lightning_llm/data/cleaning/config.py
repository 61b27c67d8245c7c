"""Configuration of the cleaning suite: each step is a dict of its arguments, or null to switch it off."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _on(**defaults: Any):
    return field(default_factory=lambda: dict(defaults))


@dataclass
class CleaningConfig:
    """The steps run in this order on every document; dedup then runs across the whole corpus.

    html: main text of HTML documents (`extractor`: resiliparse | trafilatura; `main_content`).
    gutenberg: cut Project Gutenberg license headers and footers.
    normalize: ftfy repair, `normalization` (NFC), invisible characters, whitespace, `strip_symbols`.
    length: `min_chars` / `max_chars` per document ("empty", "too_short", "too_long").
    c4_lines: datatrove's C4QualityFilter arguments (line rules: terminal punctuation, javascript, cookie
        and policy notices, lorem ipsum, curly braces, words per line).
    gopher_quality: datatrove's GopherQualityFilter arguments (word counts, mean word length, symbol ratio,
        bullet / ellipsis lines, stop words, alphabetic words).
    gopher_repetition: datatrove's GopherRepetitionFilter arguments (duplicate lines / paragraphs, top and
        duplicate n-gram fractions).
    language: `languages` and `min_score` for langid.py (off by default).
    pii: replacement tokens for `email`, `ip`, `phone` (null leaves that kind alone).
    exact_dedup: drop documents whose normalized text already occurred.
    near_dedup: MinHash + LSH near-duplicate removal (`threshold` Jaccard, `n_grams`, `hashes_per_bucket`).
    write_dropped: write dropped documents with their reason under `cleaning/dropped/`.
    tasks: input shards processed in parallel (default: one per input file, at most 64).
    executor: null runs datatrove's LocalPipelineExecutor with `data.num_proc` workers; a dict with
        `_target_` (e.g. datatrove.executor.SlurmPipelineExecutor and its arguments) runs elsewhere.
    """

    html: dict | None = _on(extractor="resiliparse", main_content=True)
    gutenberg: dict | None = _on()
    normalize: dict | None = _on(fix_unicode=True, normalization="NFC", max_blank_lines=2, strip_symbols=None)
    length: dict | None = _on(min_chars=1, max_chars=20_000_000)
    c4_lines: dict | None = _on()
    gopher_quality: dict | None = _on()
    gopher_repetition: dict | None = _on()
    language: dict | None = None
    pii: dict | None = _on(email="<EMAIL>", ip="<IP>", phone="<PHONE>")
    exact_dedup: bool = True
    near_dedup: dict | None = _on(threshold=0.8, n_grams=5, hashes_per_bucket=8)
    write_dropped: bool = False
    tasks: int | None = None
    executor: dict | None = None
