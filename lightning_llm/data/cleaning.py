"""First cleaning pass: Unicode repair and normalization, whitespace normalization, drop empty docs.

Each document gets a drop reason ("" when kept); the counts per reason go into the report, so no
document disappears without being counted.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

import datasets
import ftfy

from lightning_llm.data.config import CleaningConfig

_HSPACE = re.compile(r"[^\S\n]+")  # whitespace runs other than newlines


def normalize(text: str, cfg: CleaningConfig) -> str:
    """Repair and normalize one document's text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.fix_unicode:
        text = ftfy.fix_text(text, normalization=cfg.normalization)
    elif cfg.normalization:
        text = unicodedata.normalize(cfg.normalization, text)
    lines = [_HSPACE.sub(" ", line).rstrip() for line in text.split("\n")]
    too_many_blank = re.compile(rf"\n{{{cfg.max_blank_lines + 2},}}")
    text = too_many_blank.sub("\n" * (cfg.max_blank_lines + 1), "\n".join(lines))
    return text.strip()


def drop_reason(text: str, cfg: CleaningConfig) -> str:
    if not text:
        return "empty"
    if len(text) < cfg.min_chars:
        return "too_short"
    return ""


def clean(ds: datasets.Dataset, cfg: CleaningConfig, num_proc: int | None = None) -> tuple[datasets.Dataset, dict]:
    """Clean a split; returns the kept documents and a report of documents/bytes in and out per reason."""

    def step(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        texts = [normalize(t or "", cfg) for t in batch["text"]]
        return {"text": texts, "drop_reason": [drop_reason(t, cfg) for t in texts],
                "bytes_in": [len((t or "").encode()) for t in batch["text"]],
                "bytes_out": [len(t.encode()) for t in texts]}

    marked = ds.map(step, batched=True, num_proc=num_proc, desc="cleaning")
    reasons = Counter(marked["drop_reason"])
    kept = marked.filter(lambda r: [not x for x in r], input_columns="drop_reason", batched=True, num_proc=num_proc)
    report = {
        "documents_in": len(ds),
        "documents_out": len(kept),
        "bytes_in": int(sum(marked["bytes_in"])),
        "bytes_out": int(sum(kept["bytes_out"])),
        "dropped": {r: n for r, n in sorted(reasons.items()) if r},
    }
    return kept.remove_columns(["drop_reason", "bytes_in", "bytes_out"]), report
