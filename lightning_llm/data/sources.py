"""Where raw documents come from: local files per split, a `datasets` hub name, or a built-in corpus.

Each source becomes one datatrove reader per split it provides; splits it lacks are cut from train
after cleaning. Documents carry their split (and, where documents must stay together in one split, a
`group`) in their metadata.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lightning_llm.data.cleaning.readers import LocalDocumentsReader, kind_of
from lightning_llm.data.config import SPLITS, DataConfig
from lightning_llm.data.corpora import CORPORA, corpus_files, play_of
from lightning_llm.errors import UserError


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
        if cfg.corpus not in CORPORA:
            raise UserError(f"unknown built-in corpus data.corpus={cfg.corpus!r}; known: {sorted(CORPORA)}")
        state = {"corpus": CORPORA[cfg.corpus].sha256}
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
        readers = {split: _local_reader(resolve_files(spec, split), split, cfg, work_dir)
                   for split, spec in cfg.data_files.items()}
    elif cfg.path:
        readers = _hub_readers(cfg)
    else:
        files = [str(f) for f in corpus_files(cfg.corpus or "")]
        readers = {"train": _local_reader(files, "train", cfg, work_dir, group_fn=corpus_group)}
    return readers


def corpus_group(path: Path) -> str:
    """Both editions of a Shakespeare play stay in one split (module level: workers pickle it)."""
    return play_of(path.stem)


def resolve_files(spec: Any, split: str) -> list[str]:
    """Expand a path, glob or list of them; every pattern must match at least one file."""
    patterns = [spec] if isinstance(spec, str | os.PathLike) else list(spec)
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(str(pattern)), recursive=True))
        matches = [os.path.abspath(m) for m in matches if os.path.isfile(m)]
        if not matches:
            raise UserError(f"data.data_files.{split}: no file matches {str(pattern)!r}; "
                            "point it at existing files (a path, a glob or a list)")
        files += matches
    return files


def _local_reader(files: list[str], split: str, cfg: DataConfig, work_dir: Path, group_fn=None):
    for f in files:
        if kind_of(f) is None:
            raise UserError(f"data.data_files.{split}: {f} is not a supported file (.txt/.md or any UTF-8 text, "
                            ".html/.htm, .jsonl/.json, .parquet, optionally .gz/.zst compressed)")
        try:
            with open(f, "rb") as fh:
                fh.read(1)
        except OSError as e:
            raise UserError(f"cannot read {f} ({e.strerror}): fix its permissions or leave it out of "
                            f"data.data_files.{split}") from e
    paths = work_dir / "inputs" / f"{split}.txt"
    paths.parent.mkdir(parents=True, exist_ok=True)
    paths.write_text("\n".join(f.lstrip("/") for f in files) + "\n")
    return LocalDocumentsReader(str(paths), text_key=cfg.text_column, default_metadata={"split": split},
                                group_fn=group_fn)


def _hub_readers(cfg: DataConfig) -> dict[str, Any]:
    import datasets
    from datatrove.pipeline.readers import HuggingFaceDatasetReader

    try:
        splits = datasets.get_dataset_split_names(cfg.path, cfg.name, revision=cfg.revision)
    except Exception as e:  # datasets raises many types; the user needs the name and the reason
        raise UserError(f"could not load data.path={cfg.path!r} with datasets: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if "train" not in splits:
        raise UserError(f"datasets {cfg.path} has no train split (splits: {splits})")
    options = {k: v for k, v in (("name", cfg.name), ("revision", cfg.revision)) if v}
    return {split: HuggingFaceDatasetReader(cfg.path, dataset_options={**options, "split": split},
                                            text_key=cfg.text_column, default_metadata={"split": split})
            for split in splits if split in SPLITS}
