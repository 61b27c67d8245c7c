"""Atomic writes: a killed process leaves a temp file behind, never a half-file under the real name."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` via a temp file in the same folder and a rename."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """A file to write `path` through: a temp file in the same folder, flushed, fsynced and renamed over `path`
    on success; removed on failure, leaving `path` as it was (a full disk: an `OSError(ENOSPC)` naming `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: the file gets the mode open() would give it
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = disk_full(e, path)
        if full is not None and full is not e:
            raise full from e
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700: the folder gets the mode mkdir would give it
        yield tmp
        _fsync_tree(tmp)  # the files' bytes are on disk before the folder takes the final name
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_full(e, path)
        if full is not None and full is not e:
            raise full from e
        raise


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_tree(folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(e: BaseException, path: str | Path) -> OSError | None:
    """An `OSError(ENOSPC)` naming `path` when `e` is a full disk (also as the Rust writers of safetensors and
    tokenizers report it, in words), else None."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return e if e.filename else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if not isinstance(e, OSError) and ("No space left on device" in str(e) or "StorageFull" in str(e)):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None
