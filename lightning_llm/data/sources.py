"""Where raw documents come from: local files per split, a `datasets` hub name, or a built-in corpus.

Every source yields a `datasets.DatasetDict` whose splits have a `text` column, and a `group` column
when documents must stay together in one split (the built-in corpus's two editions of a play, or the
column named by `data.split.group_by`). Splits a source lacks are cut from train later.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import datasets

from lightning_llm.data.config import SPLITS, DataConfig
from lightning_llm.data.corpora import CORPORA, corpus_files, play_of
from lightning_llm.errors import UserError

log = logging.getLogger(__name__)

_BUILDERS = {".txt": "text", ".text": "text", ".md": "text", ".jsonl": "json", ".json": "json",
             ".parquet": "parquet", ".csv": "csv"}


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
                 for s in sorted(cfg.data_files) if cfg.data_files[s]}
    elif cfg.path:
        path = Path(cfg.path)
        stats = sorted((str(p), p.stat().st_size, p.stat().st_mtime) for p in path.rglob("*") if p.is_file()) \
            if path.is_dir() else []
        state = {"path": cfg.path, "name": cfg.name, "revision": cfg.revision, "local": stats}
    elif cfg.corpus:
        if cfg.corpus not in CORPORA:
            raise UserError(f"unknown built-in corpus data.corpus={cfg.corpus!r}; known: {sorted(CORPORA)}")
        state = {"corpus": CORPORA[cfg.corpus].sha256}
    else:
        raise UserError("no data source: set data.data_files.train=..., data.path=... or data.corpus=shakespeare")
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_documents(cfg: DataConfig) -> datasets.DatasetDict:
    """Load the configured source as a DatasetDict with a `text` column per split."""
    if cfg.data_files:
        dd = _load_local(cfg)
    elif cfg.path:
        dd = _load_hub(cfg)
    else:
        dd = _load_corpus(cfg.corpus or "")
    if "train" not in dd:
        raise UserError(f"{describe(cfg)} has no train split (splits: {sorted(dd)}); give data.data_files.train")
    for split, ds in dd.items():
        if cfg.text_column != "text" and cfg.text_column in ds.column_names:
            ds = ds.rename_column(cfg.text_column, "text")
        if cfg.split.group_by and cfg.split.group_by in ds.column_names and cfg.split.group_by != "group":
            ds = ds.rename_columns({cfg.split.group_by: "group"})
        for column, key in (("text", "data.text_column"), ("group", "data.split.group_by")):
            if column not in ds.column_names and (column == "text" or cfg.split.group_by):
                name = cfg.text_column if column == "text" else cfg.split.group_by
                raise UserError(f"{split} split of {describe(cfg)} has no column {name!r} (columns: "
                                f"{ds.column_names}); set {key} to one of them")
        dd[split] = ds.select_columns([c for c in ("text", "group") if c in ds.column_names])
    return dd


def resolve_files(spec: Any, split: str) -> list[str]:
    """Expand a path, glob or list of them; every pattern must match at least one file."""
    patterns = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise UserError(f"data.data_files.{split}: no file matches {str(pattern)!r}; "
                            "point it at existing files (a path, a glob or a list)")
        files += matches
    return files


def _load_local(cfg: DataConfig) -> datasets.DatasetDict:
    assert cfg.data_files is not None
    unknown = sorted(set(cfg.data_files) - set(SPLITS))
    if unknown:
        raise UserError(f"data.data_files has unknown split(s) {unknown}; use {list(SPLITS)}")
    out = {}
    for split, spec in cfg.data_files.items():
        if not spec:
            continue
        files = resolve_files(spec, split)
        kinds = {_BUILDERS.get(Path(f.removesuffix(".gz")).suffix.lower()) for f in files}
        if None in kinds or len(kinds) != 1:
            raise UserError(f"data.data_files.{split}: files must all be one of {sorted(_BUILDERS)} "
                            f"(optionally .gz); got {sorted({Path(f).suffix for f in files})}")
        builder = kinds.pop()
        kwargs = {"sample_by": "document"} if builder == "text" else {}
        try:
            out[split] = datasets.load_dataset(builder, data_files={split: files}, split=split, **kwargs)
        except Exception as e:
            raise UserError(f"could not read data.data_files.{split} ({files[0]}{' ...' if len(files) > 1 else ''})"
                            f" as {builder}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    return datasets.DatasetDict(out)


def _load_hub(cfg: DataConfig) -> datasets.DatasetDict:
    try:
        dd = datasets.load_dataset(cfg.path, cfg.name, revision=cfg.revision)
    except Exception as e:
        raise UserError(f"could not load data.path={cfg.path!r} with datasets.load_dataset: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    return datasets.DatasetDict({s: ds for s, ds in dd.items() if s in SPLITS})


def _load_corpus(name: str) -> datasets.DatasetDict:
    files = corpus_files(name)
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict({
        "text": [f.read_text(encoding="utf-8", errors="replace") for f in files],
        "group": [play_of(f.stem) for f in files],  # both editions of a play stay in one split
    })})
