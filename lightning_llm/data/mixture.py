"""Mixtures of sources (`data.mixture`): each source is cleaned under its own profile and packed into shards of its
own; one tokenizer serves them all; training draws rows from each source by weight (`MixtureBatchSampler`).

    data:
      mixture:
        plays: {weight: 0.7, corpus: shakespeare, cleaning: books}
        notes: {weight: 0.3, data_files: {train: notes/*.jsonl}, cleaning: {profile: docs, near_dedup: null}}

A source can also be a folder `llm-prepare` made, or its URL (`web: {weight: 0.8, prepared: s3://...}`): its rows
are taken as they are (`data.prepared_source`).

Weights only change which rows are drawn, not what is prepared, so a new weight reuses the prepared folder.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lightning_llm.config import from_dict
from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.config import DataConfig
from lightning_llm.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a source's name is part of its shard file names


@dataclass
class SourceConfig:
    """One source of a mixture: where its documents come from (the same keys as `data`), its weight, and the
    cleaning keys that replace `data.cleaning`'s for it (`cleaning: books` is short for `{profile: books}`)."""

    weight: float = 1.0
    corpus: str | None = None
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    data_files: dict[str, Any] | None = None
    text_column: str = "text"
    cleaning: dict[str, Any] | str | None = field(default_factory=dict)
    prepared: str | None = None  # a prepared folder or its URL, taken as it is (instead of documents)


def mixture_sources(data: DataConfig) -> dict[str, tuple[float, DataConfig | str]]:
    """Each source's normalized weight and the `DataConfig` that prepares it alone, or for a prepared source its
    folder or URL (in the mixture's order); a bad weight, name or key is one error naming `data.mixture.<source>`."""
    if not data.mixture:
        raise UserError("data.mixture is empty: give at least one source, e.g. "
                        "data.mixture={plays: {weight: 1, corpus: shakespeare}}")
    out: dict[str, tuple[float, DataConfig | str]] = {}
    for name, values in data.mixture.items():
        where = f"data.mixture.{name}"
        if not _NAME.match(str(name)):
            raise UserError(f"{where}: a source name must be letters, digits, '_', '.' or '-' (it names its shard "
                            "files): rename it")
        source = from_dict(SourceConfig, values, where)
        weight = source.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise UserError(f"{where}.weight={weight!r}: a source's weight must be a number above 0 (a weight of 0 "
                            f"would never draw it): give it a positive weight or remove {where}")
        documents = [k for k in ("corpus", "path", "data_files") if getattr(source, k)]
        if source.prepared:
            if documents or source.cleaning:
                raise UserError(f"{where}: a prepared source is taken as it is (already cleaned and tokenized): "
                                f"drop {where}.{(documents or ['cleaning'])[0]}, or make it a source of its own")
            out[str(name)] = (float(weight), str(source.prepared))
            continue
        if not documents:
            raise UserError(f"{where} has no documents: give it corpus=..., path=..., data_files={{train: ...}} or "
                            "prepared=<a prepared folder or URL>")
        out[str(name)] = (float(weight), _source_data(data, source, where))
    total = sum(w for w, _ in out.values())
    return {name: (w / total, cfg) for name, (w, cfg) in out.items()}


def _source_data(data: DataConfig, source: SourceConfig, where: str) -> DataConfig:
    cleaning = {"profile": source.cleaning} if isinstance(source.cleaning, str) else dict(source.cleaning or {})
    merged = from_dict(CleaningConfig, {**asdict(data.cleaning), **cleaning}, f"{where}.cleaning")
    return replace(data, mixture=None, corpus=source.corpus, path=source.path, name=source.name,
                   revision=source.revision, data_files=source.data_files, text_column=source.text_column,
                   cleaning=merged)

