"""Where raw documents come from: local files per split, a `datasets` hub name, or a built-in corpus.

Each source becomes one datatrove reader per split it provides; splits it lacks are cut from train
after cleaning. Documents carry their split (and, where documents must stay together in one split, a
`group`) in their metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from lightning_llm.data.config import SPLITS, DataConfig
from lightning_llm.data.sources.corpora import corpus_files, corpus_group, get_corpus
from lightning_llm.data.sources.hub import hub_readers
from lightning_llm.data.sources.local import local_reader, resolve_files
from lightning_llm.errors import UserError

log = logging.getLogger("lightning_llm")


def describe(cfg: DataConfig) -> str:
    if cfg.data_files:
        return f"local files {dict(cfg.data_files)}"
    if cfg.path:
        return f"datasets {cfg.path}" + (f" ({cfg.name})" if cfg.name else "")
    return f"built-in corpus {cfg.corpus!r}"


def fingerprint(cfg: DataConfig) -> str:
    """A hash that changes when the source's content may have changed (file sizes and mtimes)."""
    if cfg.data_files:
        state = {s: [(f, os.path.getsize(f), os.path.getmtime(f)) for f in resolve_files(cfg.data_files[s], s)]
                 for s in sorted(cfg.data_files)}
    elif cfg.path:
        path = Path(cfg.path)
        stats = sorted((str(p), p.stat().st_size, p.stat().st_mtime) for p in path.rglob("*") if p.is_file()) \
            if path.is_dir() else []
        state = {"path": cfg.path, "name": cfg.name, "revision": cfg.revision, "local": stats}
    elif cfg.corpus:
        state = {"corpus": get_corpus(cfg.corpus).sha256}
    else:
        raise UserError("no data source: set data.data_files.train=..., data.path=... or data.corpus=shakespeare")
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_readers(cfg: DataConfig, work_dir: Path) -> dict[str, Any]:
    """One datatrove reader per split the source provides (train always)."""
    if cfg.data_files:
        unknown = sorted(set(cfg.data_files) - set(SPLITS))
        if unknown:
            raise UserError(f"data.data_files has unknown split(s) {unknown}; use {list(SPLITS)}")
        if "train" not in cfg.data_files:
            raise UserError("data.data_files has no train split: give data.data_files.train")
        readers = {split: local_reader(_first(resolve_files(spec, split), cfg.max_files if split == "train" else None,
                                              f"data.data_files.{split}"), split, cfg.text_column, work_dir)
                   for split, spec in cfg.data_files.items()}
    elif cfg.path:
        if cfg.max_files is not None:
            raise UserError("data.max_files takes the first files of data.data_files.train or of the built-in corpus; "
                            "a datasets source (data.path) has no files to take: drop data.max_files")
        readers = hub_readers(cfg)
    else:
        files = _first([str(f) for f in corpus_files(cfg.corpus or "")], cfg.max_files, f"data.corpus={cfg.corpus}")
        readers = {"train": local_reader(files, "train", cfg.text_column, work_dir, group_fn=corpus_group)}
    return readers


def _first(files: list, max_files: int | None, where: str = "the source") -> list:
    """The first `max_files` files by name (all of them for None): a quick run's slice of a source, said in the log
    when it leaves files out."""
    if max_files is None:
        return files
    if max_files < 1:
        raise UserError(f"data.max_files={max_files}: give a positive number of files, or null for all of them")
    if len(files) > max_files:
        log.warning("data.max_files=%d: training on the first %d of the %d files of %s (recipe=tiny sets it; "
                    "data.max_files=null takes them all)", max_files, max_files, len(files), where)
    return sorted(files, key=lambda f: Path(f).name)[:max_files]


__all__ = ["describe", "fingerprint", "resolve_files", "source_readers"]
