"""Local files per split: paths, globs or lists, each read as documents by `LocalDocumentsReader`."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from lightning_llm.data.sources.readers import LocalDocumentsReader, kind_of
from lightning_llm.errors import UserError


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


def local_reader(files: list[str], split: str, text_column: str, work_dir: Path, group_fn=None) -> LocalDocumentsReader:
    """A reader of `files` for `split`; unsupported or unreadable files are errors naming the file."""
    for f in files:
        if kind_of(f) is None:
            raise UserError(f"data.data_files.{split}: {f} is not a supported file (.txt/.md or any UTF-8 text, "
                            ".html/.htm, .jsonl/.json, .parquet, .csv/.tsv, optionally .gz/.zst compressed)")
        try:
            with open(f, "rb") as fh:
                fh.read(1)
        except OSError as e:
            raise UserError(f"cannot read {f} ({e.strerror}): fix its permissions or leave it out of "
                            f"data.data_files.{split}") from e
    paths = work_dir / "inputs" / f"{split}.txt"
    paths.parent.mkdir(parents=True, exist_ok=True)
    paths.write_text("\n".join(f.lstrip("/") for f in files) + "\n")
    return LocalDocumentsReader(str(paths), text_key=text_column, default_metadata={"split": split},
                                group_fn=group_fn)
