"""A mixture source that is already prepared (`data.mixture.<name>.prepared`): a folder `llm-prepare` made, or the
object-store URL it published that folder to. Its rows are taken as they are: not cleaned, split or tokenized again.

    data:
      mixture:
        web: {weight: 0.8, prepared: s3://lake/prepared/files-3f2a9c0d1e4b}
        plays: {weight: 0.2, corpus: shakespeare, cleaning: books}

One tokenizer serves a mixture, so the prepared source's tokenizer becomes the mixture's (the other sources are
tokenized with it), and its rows must be `data.seq_len` tokens long. Into a mixture prepared on this machine, a local
folder's shards are hard-linked (copied across filesystems) and a URL's rows downloaded; a mixture streamed from an
object store (`paths.data_dir` a URL) streams a URL source from where it is, with no copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_llm.data import streaming
from lightning_llm.data.packing import check_shards, file_sha256, write_shard
from lightning_llm.data.streaming import MANIFEST, is_url
from lightning_llm.errors import UserError
from lightning_llm.paths import cache_dir


@dataclass(frozen=True)
class PreparedSource:
    """A prepared folder as a mixture source.

    Attributes:
        location: the folder or URL as given (a URL without its trailing '/').
        folder: a local folder with its manifest, tokenizer and cleaning report (a URL's: fetched into the cache).
        manifest: its manifest.
        digest: the manifest's sha256 (16 hex digits): what the mixture's prepared folder is keyed by.
    """

    location: str
    folder: Path
    manifest: dict
    digest: str

    @property
    def url(self) -> str | None:
        return self.location if is_url(self.location) else None


_opened: dict[str, PreparedSource] = {}  # a URL's manifest is read once per process (prepared_dir asks often)


def open_prepared(location: str, where: str) -> PreparedSource:
    """The prepared folder or URL `location` of the source `where` (`data.mixture.<name>`); one line if it is not a
    prepared folder, or is itself a mixture."""
    location = location.rstrip("/") if is_url(location) else str(Path(location).expanduser())
    if location in _opened:
        return _opened[location]
    if is_url(location):
        streaming.check_bucket(location)
        folder = _fetch(location, where)
    else:
        folder = Path(location)
        if not (folder / MANIFEST).is_file():
            raise UserError(f"{where}.prepared={location} has no {MANIFEST}: give a folder llm-prepare made (the "
                            "'Prepared data:' path it prints), or its URL")
    manifest = json.loads((folder / MANIFEST).read_text())
    if "mixture" in manifest:
        raise UserError(f"{where}.prepared={location} is itself a mixture ({', '.join(manifest['mixture'])}): list "
                        "its sources in data.mixture instead")
    source = PreparedSource(location, folder, manifest, file_sha256(folder / MANIFEST)[:16])
    if source.url:
        _opened[location] = source
    return source


def _fetch(url: str, where: str) -> Path:
    """The manifest, tokenizer and cleaning report of `url` in the cache, in a folder named by the manifest's
    sha256 (so a republished URL is fetched again)."""
    fs = streaming._fs(url)
    if not fs.exists(f"{url}/{MANIFEST}"):
        raise UserError(f"{where}.prepared={url} has no {MANIFEST}: give the URL of a prepared folder (llm-prepare "
                        "paths.data_dir=<bucket URL> publishes one and prints its name)")
    root = cache_dir() / "streamed" / "sources"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        fs.download_file(f"{url}/{MANIFEST}", f"{tmp}/{MANIFEST}")
        digest = file_sha256(Path(tmp) / MANIFEST)[:16]
    return streaming.fetch_meta(url, root / digest)


def check_seq_len(source: PreparedSource, seq_len: int, where: str) -> None:
    if source.manifest["seq_len"] != seq_len:
        raise UserError(f"{where}.prepared={source.location} holds rows of {source.manifest['seq_len']} tokens, "
                        f"data.seq_len={seq_len}: set data.seq_len={source.manifest['seq_len']}, or prepare the "
                        "source again with this one")


def split_counts(source: PreparedSource, split: str) -> dict:
    """A split's counts (documents, bytes, tokens, sequences) without its shards."""
    return {k: v for k, v in source.manifest["splits"][split].items() if k != "shards"}


def copy_rows(source: PreparedSource, name: str, split: str, shards_dir: Path, shard_size: int) -> list[dict]:
    """The rows of `split` as shards of the mixture named `<name>-...` in `shards_dir` (each tagged with its source):
    a local folder's shards hard-linked (copied where a link cannot be made), a URL's rows downloaded, in order."""
    if source.url:
        return _download(source, name, split, shards_dir, shard_size)
    if split == "train":  # once per source: every shard there, of the size its manifest gives
        check_shards(source.folder, source.manifest)
    out = []
    for info in source.manifest["splits"][split]["shards"]:
        dst = shards_dir / f"{name}-{info['file']}"
        dst.unlink(missing_ok=True)  # a resumed preparation's leftover
        try:
            os.link(source.folder / "shards" / info["file"], dst)
        except OSError:  # another filesystem: a copy, renamed into place with the rest of the prepared folder
            shutil.copyfile(source.folder / "shards" / info["file"], dst)
        out.append({**info, "file": dst.name, "source": name})
    return out


def _download(source: PreparedSource, name: str, split: str, shards_dir: Path, shard_size: int) -> list[dict]:
    dataset = streaming.streaming_dataset(source.url, split, cache_dir() / "streamed" / "chunks", shuffle=False,
                                          seed=0, drop_last=False)
    out: list[dict] = []
    rows: list[np.ndarray] = []

    def flush() -> None:
        out.append({**write_shard(shards_dir / f"{name}-{split}-{len(out):05d}.npy", np.stack(rows)), "source": name})
        rows.clear()

    for row in dataset:
        rows.append(np.asarray(row))
        if len(rows) == shard_size:
            flush()
    if rows:
        flush()
    want = source.manifest["splits"][split]["sequences"]
    if (got := sum(s["rows"] for s in out)) != want:
        raise UserError(f"{source.url}/{split} streamed {got} rows, its manifest says {want}: the URL holds an "
                        "incomplete upload; publish it again (llm-prepare paths.data_dir=<bucket URL>)")
    return out
