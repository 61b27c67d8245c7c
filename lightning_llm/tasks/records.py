"""Read task records (dicts) from local files or the hub, each with where it came from for errors."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning_llm.errors import UserError

Record = tuple[dict[str, Any], str]  # the record, and "file:line" (or "hub split #index") for messages


def files_of(spec: Any, key: str) -> list[Path]:
    """A path, glob or list of them -> existing files, in order; none found is an error naming `key`."""
    specs = [spec] if isinstance(spec, str | Path) else list(spec)
    out: list[Path] = []
    for s in specs:
        matches = sorted(glob.glob(str(s))) if any(c in str(s) for c in "*?[") else [str(s)]
        for m in matches:
            if not Path(m).is_file():
                raise UserError(f"{key}: no file {m}: check the path (relative paths start at the folder you "
                                "launched from)")
            out.append(Path(m))
    if not out:
        raise UserError(f"{key}={spec!r} matches no file")
    return out


def read_local(files: list[Path]) -> Iterator[Record]:
    """JSONL (one object per line), a JSON list, CSV/TSV and Parquet."""
    for f in files:
        suffix = f.suffix.lower()
        if suffix in (".jsonl", ".json"):
            yield from _read_json(f)
        elif suffix in (".csv", ".tsv", ".parquet"):
            from datasets import load_dataset

            kind = {".tsv": "csv", ".csv": "csv", ".parquet": "parquet"}[suffix]
            extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
            rows = load_dataset(kind, data_files=str(f), split="train", **extra)
            for i, row in enumerate(rows):
                yield row, f"{f}:{i + 2 if kind == 'csv' else i}"
        else:
            raise UserError(f"{f}: unknown file type {suffix!r}: give .jsonl, .json, .csv, .tsv or .parquet "
                            "(two line-aligned text files: data.format=lines)")


def _read_json(f: Path) -> Iterator[Record]:
    text = f.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{f}:{e.lineno}: not valid JSON ({e.msg})") from None
        for i, row in enumerate(rows):
            yield _object(row, f"{f} item {i}"), f"{f} item {i}"
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{f}:{n}: not valid JSON ({e.msg}): one JSON object per line") from None
        yield _object(row, f"{f}:{n}"), f"{f}:{n}"


def _object(row: Any, where: str) -> dict:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def read_lines(files: list[Path], key: str) -> Iterator[Record]:
    """Two line-aligned text files (source, target) -> records {source, target}."""
    if len(files) != 2:
        raise UserError(f"{key}: data.format=lines needs exactly two files, source then target, e.g. "
                        f"{key}=[train.en,train.es]; got {len(files)}")
    src = files[0].read_text(encoding="utf-8").splitlines()
    tgt = files[1].read_text(encoding="utf-8").splitlines()
    if len(src) != len(tgt):
        raise UserError(f"{files[0]} has {len(src)} lines and {files[1]} has {len(tgt)}: line-aligned files must "
                        "have as many lines")
    for n, (s, t) in enumerate(zip(src, tgt, strict=True), 1):
        if s.strip() and t.strip():
            yield {"source": s, "target": t}, f"{files[0]}:{n}"


def read_hub(path: str, name: str | None, revision: str | None, split: str) -> Iterator[Record] | None:
    """A `datasets` hub dataset's split, or None when it has no such split."""
    from datasets import get_dataset_split_names, load_dataset

    try:
        if split not in get_dataset_split_names(path, name, revision=revision):
            return None
        rows = load_dataset(path, name, revision=revision, split=split)
    except Exception as e:  # network, auth, a missing dataset: datasets raises many kinds
        raise UserError(f"data.path={path!r}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0]}); "
                        "without a network, use local files (data.data_files.train=...)") from None
    return ((row, f"{path} {split} #{i}") for i, row in enumerate(rows))
