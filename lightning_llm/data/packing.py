"""Encode documents with EOS between them and pack into fixed-length sequences in `.npy` shards.

Row `i` of a split holds stream tokens `[i*L, i*L + L + 1)`: inputs are its first L tokens, targets its
last L, so every token but the first is predicted exactly once. Shards are written atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from lightning_llm.errors import UserError
from lightning_llm.io import atomic_file


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)


def pack(batches: Iterable[list[str]], tok: PreTrainedTokenizerBase, seq_len: int, out_dir: Path, split: str,
         shard_size: int) -> dict:
    """Encode text batches and write `{split}-NNNNN.npy` shards of shape [rows, seq_len + 1]."""
    dtype, eos = token_dtype(len(tok)), tok.eos_token_id
    backend = tok.backend_tokenizer
    buffer: list[np.ndarray] = []
    buffered = documents = tokens = text_bytes = 0
    shards: list[dict] = []
    rows_per_shard_tokens = shard_size * seq_len + 1

    def flush(final: bool) -> None:
        nonlocal buffer, buffered
        stream = np.concatenate(buffer) if buffer else np.zeros(0, dtype=dtype)
        while len(stream) >= rows_per_shard_tokens or (final and len(stream) >= seq_len + 1):
            rows = min(shard_size, (len(stream) - 1) // seq_len)
            windows = np.lib.stride_tricks.sliding_window_view(stream[: rows * seq_len + 1], seq_len + 1)[::seq_len]
            shards.append(write_shard(out_dir / f"{split}-{len(shards):05d}.npy", windows))
            stream = stream[rows * seq_len:]
        buffer, buffered = [stream], len(stream)

    for texts in batches:
        for enc in backend.encode_batch(texts, add_special_tokens=False):
            ids = np.asarray(enc.ids, dtype=dtype)
            buffer += [ids, np.asarray([eos], dtype=dtype)]
            buffered += len(ids) + 1
            tokens += len(ids) + 1
        documents += len(texts)
        text_bytes += sum(len(t.encode()) for t in texts)
        if buffered >= rows_per_shard_tokens:
            flush(final=False)
    flush(final=True)
    rows = sum(s["rows"] for s in shards)
    kept = rows * seq_len + 1 if rows else 0
    return {"documents": documents, "bytes": text_bytes, "tokens": tokens, "tokens_dropped_tail": tokens - kept,
            "sequences": rows, "shards": shards}


def write_shard(path: Path, rows: np.ndarray) -> dict:
    with atomic_file(path) as f:
        np.save(f, np.ascontiguousarray(rows))
    # size and checksum, so a reused folder can tell a shard an interrupted copy cut short (data.verify)
    return {"file": path.name, "rows": int(rows.shape[0]), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def check_shards(folder: Path, manifest: dict, verify: bool = False) -> None:
    """Each shard of a prepared folder exists and has the size the manifest gives (or, for folders written
    before sizes were recorded, the size its own .npy header implies); with `verify`, its sha256 too. A damaged
    folder is one line naming the file and the command that rebuilds it."""
    for info in (s for split in manifest["splits"].values() for s in split["shards"]):
        path = folder / "shards" / info["file"]
        problem = None
        if not path.is_file():
            problem = "is missing"
        else:
            size, expected = path.stat().st_size, info.get("bytes") or _npy_size(path)
            if expected is not None and size != expected:
                problem = f"is {size:,} bytes, not the {expected:,} it was written with (an interrupted copy?)"
            elif expected is None:
                problem = "has no readable .npy header"
            elif verify and info.get("sha256") and file_sha256(path) != info["sha256"]:
                problem = "does not match its sha256 in the manifest (changed on disk)"
        if problem:
            raise UserError(f"prepared data {folder} is damaged: shards/{info['file']} {problem}. Rebuild it: "
                            f"rm -rf {folder}, then run the same command again (it prepares the data anew)")


def _npy_size(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            return f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize
    except (ValueError, OSError):
        return None
