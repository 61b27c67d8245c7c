"""Prepared data in object storage, streamed with LitData (`paths.data_dir=s3://bucket/prefix`).

`publish` writes a prepared folder's packed rows as a LitData optimized dataset per split (`<url>/<split>/`:
chunks and `index.json`), then its tokenizer and `manifest.json` beside them; the manifest goes last, so a URL
with a manifest is complete. `StreamedData` reads them back: the manifest and tokenizer are fetched into the
local cache, the rows are streamed (LitData splits them across processes and DataLoader workers, shuffles by
chunk, and resumes mid-epoch from its loader's state). s3:// (any S3-compatible server through the usual AWS
variables, `AWS_ENDPOINT_URL` included), gs:// and r2:// are LitData's; file:///path is a local or shared folder
holding the same datasets, which LitData reads in place.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from lightning_llm.data.config import SPLITS
from lightning_llm.errors import UserError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
_REPORT = "cleaning_report.json"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")
_FILE = "file://"


class _Folder:
    """A local or shared folder in the place of an object store (`file://` URLs), with the three calls of LitData's
    `FsProvider` that this module makes; files are written atomically (a temp file in the same folder, renamed)."""

    def exists(self, url: str) -> bool:
        return os.path.exists(url.removeprefix(_FILE))

    def upload_file(self, local: str, url: str) -> None:
        from lightning_llm.io import atomic_file

        with open(local, "rb") as src, atomic_file(url.removeprefix(_FILE)) as dst:
            shutil.copyfileobj(src, dst)

    def download_file(self, url: str, local: str) -> None:
        shutil.copyfile(url.removeprefix(_FILE), local)


def is_url(location: str | Path | None) -> bool:
    return location is not None and bool(_URL.match(str(location)))


def _litdata():
    try:
        import litdata
    except ImportError:
        raise UserError("streaming from an object store needs LitData: pip install 'lightning_llm[stream]'") from None
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        # An S3-compatible server over plain http (MinIO, moto, a local gateway): LitData's async reader (obstore)
        # refuses http unless told; its boto3 path already follows AWS_ENDPOINT_URL.
        from litdata.streaming import downloader

        downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"
    return litdata


def _fs(url: str):
    from litdata.streaming.fs_provider import _get_fs_provider

    _litdata()
    if url.startswith(_FILE):
        return _Folder()
    try:
        return _get_fs_provider(url)
    except ValueError:
        raise UserError(f"{url}: LitData streams from s3://, gs://, r2:// or file:///path URLs (or give a plain "
                        "folder for the memmap path)") from None


def check_bucket(url: str) -> None:
    """A missing or unreachable bucket (a file:// folder that cannot be made) is one line naming the URL (before
    anything is built for it)."""
    if url.startswith(_FILE):
        try:
            Path(url.removeprefix(_FILE)).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{url}: the folder cannot be made ({e.strerror or e}): fix paths.data_dir") from None
        return
    if not url.startswith("s3://"):
        return
    import botocore.exceptions

    bucket = url.removeprefix("s3://").split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "the AWS default endpoint")
    import boto3
    from botocore.config import Config

    _litdata()
    # a client of our own for the check: LitData's retries up to 1,000 times, which hides a wrong endpoint for minutes
    client = boto3.client("s3", config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10,
                                              read_timeout=30))
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        why = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be read ({code or e})"
        raise UserError(f"{url}: the bucket {bucket!r} {why} at {endpoint}: create it, or fix paths.data_dir and "
                        "the AWS_* variables (credentials, AWS_ENDPOINT_URL)") from None
    except (botocore.exceptions.BotoCoreError, OSError) as e:
        raise UserError(f"{url}: the object store is unreachable ({type(e).__name__}: {e}): check AWS_ENDPOINT_URL "
                        f"({endpoint}), the network and the credentials") from None


def exists(url: str) -> bool:
    return _fs(url).exists(f"{url}/{MANIFEST}")


def publish(folder: Path, url: str, manifest: dict, chunk_bytes: str = "64MB") -> None:
    """Write the prepared `folder` to `url` as LitData optimized datasets (one per split, `<url>/<split>/`; a
    mixture's one per split and source, `<url>/<split>/<source>/`: each packed row an item, in the shards' order),
    then its tokenizer, cleaning report and, last, its manifest."""
    _litdata()
    from litdata.streaming.writer import BinaryWriter
    from litdata.utilities.env import _DistributedEnv

    start = time.perf_counter()
    fs = _fs(url)
    staging = folder / "litdata"
    # a mixture: one dataset per source and split (but a prepared URL source, streamed from where it is)
    mixture = manifest.get("mixture")
    sources = [n for n, info in mixture.items() if "url" not in info] if mixture else [None]
    for split in SPLITS:
        for source in sources:
            where = f"{split}/{source}" if source else split
            shards = [info for info in manifest["splits"][split]["shards"] if info.get("source") == source]
            # LitData's own chunk writer, in this process (its `optimize` would start worker processes for a copy)
            shutil.rmtree(staging / where, ignore_errors=True)
            writer = BinaryWriter(str(staging / where), chunk_bytes=chunk_bytes)
            # one writer for the whole split: inside a multi-process job LitData would otherwise wait for the other
            # ranks' chunk indexes, which never come (only one process publishes)
            writer._distributed_env = _DistributedEnv(world_size=1, global_rank=0, num_nodes=1)
            index = 0
            for info in shards:
                rows = np.load(folder / "shards" / info["file"], mmap_mode="r")
                for i in range(len(rows)):
                    writer.add_item(index, np.ascontiguousarray(rows[i]))
                    index += 1
            writer.done()
            writer.merge()
            for path in sorted((staging / where).iterdir()):
                fs.upload_file(str(path), f"{url}/{where}/{path.name}")
    shutil.rmtree(staging, ignore_errors=True)
    for name in _TOKENIZER_FILES:
        if (folder / "tokenizer" / name).exists():
            fs.upload_file(str(folder / "tokenizer" / name), f"{url}/tokenizer/{name}")
    fs.upload_file(str(folder / _REPORT), f"{url}/{_REPORT}")
    fs.upload_file(str(folder / MANIFEST), f"{url}/{MANIFEST}")
    log.info("Published %s to %s in %.1fs", folder, url, time.perf_counter() - start)


def fetch_meta(url: str, into: Path) -> Path:
    """The manifest and tokenizer of `url` in the local folder `into` (fetched once)."""
    if (into / MANIFEST).exists():
        return into
    fs = _fs(url)
    if not fs.exists(f"{url}/{MANIFEST}"):
        raise UserError(f"{url} has no {MANIFEST}: prepare it there first (llm-prepare paths.data_dir=<the parent "
                        "URL>, or llm-train with the same data config)")
    # a folder of this process's own: the processes of a job fetch at once, and the first to finish wins
    partial = into.with_name(f"{into.name}.partial-{os.getpid()}")
    (partial / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if fs.exists(f"{url}/tokenizer/{name}"):
            fs.download_file(f"{url}/tokenizer/{name}", str(partial / "tokenizer" / name))
    fs.download_file(f"{url}/{_REPORT}", str(partial / _REPORT))
    fs.download_file(f"{url}/{MANIFEST}", str(partial / MANIFEST))
    try:
        partial.rename(into)
    except OSError:
        if (into / MANIFEST).exists():  # another process put its copy there first (the same files)
            shutil.rmtree(partial, ignore_errors=True)
        else:  # a leftover without a manifest
            shutil.rmtree(into)
            partial.rename(into)
    return into


def streaming_dataset(url: str, split: str, cache: Path, shuffle: bool, seed: int, drop_last: bool) -> Any:
    """One split (a mixture's: `<split>/<source>`) as a LitData `StreamingDataset` of rows (uint16/uint32 arrays of
    seq_len + 1 tokens)."""
    litdata = _litdata()
    cache.mkdir(parents=True, exist_ok=True)
    # item_shuffle_window=0: a full permutation of each chunk's rows. LitData's default shuffles blocks of 256
    # consecutive rows and then within each, so a batch held rows from one stretch of a few documents (packed rows
    # keep the documents' order): the default recipe ended 0.13 bpb worse than the memmap path's global permutation.
    # batch_decode="all": a chunk's rows are decoded once when it is local. LitData's "auto" decodes aligned windows
    # of 256 rows and keeps one, so under the full permutation nearly every row decoded a window of its own: 778
    # rows/s against 32,226 with "all" (`python -m benchmarks.streaming_decode`, LitData 0.2.76).
    for attempt in range(10):
        try:
            # a file:// folder as a plain path: LitData reads its chunks in place (no copy into the cache)
            return litdata.StreamingDataset(f"{url}/{split}".removeprefix(_FILE), cache_dir=str(cache),
                                            shuffle=shuffle, seed=seed, drop_last=drop_last, item_shuffle_window=0,
                                            batch_decode="all")
        except ValueError as e:
            # the processes of a node share the cache: one may look while another is still writing the index there
            if "index.json" not in str(e) or attempt == 9:
                raise
            time.sleep(1 + attempt)


def wait_for(url: str, timeout_s: float) -> None:
    """Wait for another process publishing `url` (its manifest appears last)."""
    log.info("Another process is publishing %s: waiting for it (at most data.prepare_timeout_s=%s s)", url, timeout_s)
    deadline = time.monotonic() + timeout_s
    while not exists(url):
        if time.monotonic() > deadline:
            raise UserError(f"waited {timeout_s} s for another process publishing {url}: raise "
                            "data.prepare_timeout_s, or run llm-prepare once before the job")
        time.sleep(2)


def loader(dataset: Any, batch_size: int, num_workers: int, collate_fn: Any, drop_last: bool) -> Any:
    """LitData's `StreamingDataLoader` over a streamed split (stateful: resumable mid-epoch), made to resume across
    epochs too (see `_epoch_loader`)."""
    return _epoch_loader()(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn,
                           drop_last=drop_last)


@functools.cache
def _epoch_loader() -> type:
    """`StreamingDataLoader` that starts a fresh epoch after a resumed one even when the resumed epoch's iterator
    was not run to its end.

    LitData clears its "resuming" flag only when an epoch's generator runs out; Lightning takes `len(loader)`
    batches and never asks for the one past the end. So after a resume, the next epoch replayed the restored state
    instead of shuffling a new epoch (LitData 0.2.76; one or two processes alike): a resumed run drew other rows than
    the uninterrupted one from the first epoch boundary on."""
    class EpochResumingLoader(_litdata().StreamingDataLoader):
        def __iter__(self):
            if self.restore and self._num_samples_yielded_streaming >= len(self) * self.batch_size:
                self.restore = False  # the resumed epoch was used up: LitData's own epoch transition follows
            return super().__iter__()

    return EpochResumingLoader
