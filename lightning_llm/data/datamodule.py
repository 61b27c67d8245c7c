"""PretrainDataModule: `prepare_data()` runs the data pipeline once, `setup()` maps the shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from lightning_llm.config import from_dict
from lightning_llm.data import streaming
from lightning_llm.data.config import IGNORE, DataConfig, TokenizerConfig
from lightning_llm.data.mixture import mixture_sources
from lightning_llm.data.packing import check_shards
from lightning_llm.data.pipeline import prepare, prepared_dir, read_manifest
from lightning_llm.data.sampling import GlobalBatchSampler, MixtureBatchSampler, RankSampler, interleaved
from lightning_llm.data.streamed_mixture import StreamedMixtureEval, StreamedMixtureRows
from lightning_llm.data.streaming import is_url
from lightning_llm.data.tokenizer import load_tokenizer, token_byte_lengths, tokenizer_hash
from lightning_llm.errors import UserError
from lightning_llm.paths import cache_dir


def document_positions(input_ids: np.ndarray, eos_id: int) -> np.ndarray:
    """Position ids that restart at 0 at every EOS of a packed row: each EOS begins the next document (as a BOS
    would), so a document's tokens are predicted from that document alone. With these and no attention mask,
    `transformers` attends within each document only (the mechanism SFT packing uses)."""
    n = len(input_ids)
    starts = np.flatnonzero(input_ids == eos_id)
    start_of = np.zeros(n, dtype=np.int64)
    start_of[starts] = starts
    np.maximum.accumulate(start_of, out=start_of)
    return np.arange(n, dtype=np.int64) - start_of


class PackedDataset(Dataset):
    """Rows of memory-mapped `.npy` shards; each item is `input_ids` [L] with `labels` [L] and the UTF-8
    byte count of each label token (`label_bytes`, for bits per byte); with `eos_id` (document masking) also
    `position_ids` restarting at every EOS; with `sources` (each file's source index, in a mixture) `source`."""

    def __init__(self, files: list[Path], token_bytes: np.ndarray, eos_id: int | None = None,
                 sources: list[int] | None = None):
        self.shards = [np.load(f, mmap_mode="r") for f in files]
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])
        self.token_bytes = token_bytes
        self.eos_id = eos_id
        self.sources = sources

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
        item = row_item(self.shards[shard][index - self.offsets[shard]], self.token_bytes, self.eos_id)
        if self.sources is not None:
            item["source"] = torch.tensor(self.sources[shard])
        return item


def row_item(row: np.ndarray, token_bytes: np.ndarray, eos_id: int | None = None) -> dict[str, torch.Tensor]:
    """One packed row (seq_len + 1 tokens) as a training item: inputs, labels, label bytes, and with `eos_id`
    position ids restarting at every EOS (memmapped and streamed rows alike)."""
    row = np.asarray(row, dtype=np.int64)
    item = {"input_ids": torch.from_numpy(row[:-1]), "labels": torch.from_numpy(row[1:]),
            "label_bytes": torch.from_numpy(token_bytes[row[1:]].astype(np.int16))}
    if eos_id is not None:
        item["position_ids"] = torch.from_numpy(document_positions(row[:-1], eos_id))
    return item


class RowCollate:
    """Streamed rows (seq_len + 1 tokens each) into the batch `PackedDataset` items would make."""

    def __init__(self, token_bytes: np.ndarray, eos_id: int | None = None):
        self.token_bytes, self.eos_id = token_bytes, eos_id

    def item(self, row: np.ndarray) -> dict[str, torch.Tensor]:
        return row_item(row, self.token_bytes, self.eos_id)

    def __call__(self, rows: list) -> dict[str, torch.Tensor]:
        return default_collate([self.item(r) for r in rows])


class PaddedEval(Dataset):
    """`dataset` followed by padding rows (labels `IGNORE`, no bytes) up to `length`, for `RankSampler`."""

    def __init__(self, dataset: Dataset, length: int):
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < len(self.dataset):
            return self.dataset[index]
        row = self.dataset[0]
        return {**row, "labels": torch.full_like(row["labels"], IGNORE),
                "label_bytes": torch.zeros_like(row["label_bytes"])}


def split_dataset(prepared: str | Path, split: str, tokenizer=None, eos_id: int | None = None) -> PackedDataset:
    """One split of a prepared folder; `tokenizer` (default: the folder's own) must be the one it was made with;
    `eos_id`: document masking (position ids restarting at every EOS)."""
    folder = Path(prepared)
    manifest = read_manifest(folder)
    if split not in manifest["splits"]:
        raise UserError(f"{folder} has no split {split!r} (it has {sorted(manifest['splits'])})")
    tokenizer = tokenizer or load_tokenizer(folder / "tokenizer")
    check_tokenizer(manifest, tokenizer, folder)
    return _split(folder, manifest, split, token_byte_lengths(tokenizer), eos_id)


def _split(folder: Path, manifest: dict, split: str, token_bytes: np.ndarray, eos_id: int | None) -> PackedDataset:
    shards = manifest["splits"][split]["shards"]
    names = list(manifest.get("mixture", {}))  # a mixture's rows say their source (their shard's)
    sources = [names.index(s["source"]) for s in shards] if names else None
    return PackedDataset([folder / "shards" / s["file"] for s in shards], token_bytes, eos_id, sources)


class PretrainDataModule(L.LightningDataModule):
    """Documents in, packed token batches out; usable with a plain `lightning.Trainer`.

    Training batches come from a `GlobalBatchSampler` (a mixture's from a `MixtureBatchSampler`, by weight): the
    data order depends on `seed` only (not on the number of processes), and the position is saved in checkpoints,
    so a resumed run neither replays nor skips a batch. Rows of a mixture carry their `source` index
    (`source_names`); `training.callbacks.MixtureMetrics` logs each source's tokens and validation bpb. Under
    DDP, give the Trainer `use_distributed_sampler=False`: the sampler shards.

    Args:
        data: where documents come from, cleaning, split, sequence length and batch size (per process).
        tokenizer: train a BPE (`vocab_size`) or load one (`path`).
        data_dir: where prepared data is cached (default: the user cache folder), or an object-store URL
            (s3://bucket/prefix, gs://, r2://) to prepare the data there once and stream it (LitData; see
            `data.streaming`): the rows are then shuffled by LitData (by chunk, seeded) and split across processes
            and workers by it, and its loader's state resumes mid-epoch.
        seed: seeds the order of training batches.
    """

    def __init__(self, data: DataConfig | dict[str, Any] | None = None,
                 tokenizer: TokenizerConfig | dict[str, Any] | None = None, data_dir: str | Path | None = None,
                 seed: int = 1234):
        super().__init__()
        self.data = from_dict(DataConfig, data, "data")
        self.tokenizer_cfg = from_dict(TokenizerConfig, tokenizer, "tokenizer")
        self.url = str(data_dir).rstrip("/") if is_url(data_dir) else None
        # a streamed run builds its data in the local cache before publishing it to the URL
        self.data_dir = Path(data_dir) if data_dir and not self.url else cache_dir() / "prepared"
        self.seed = seed
        self.batches_consumed = 0  # training batches that reached a training step, across epochs
        self.tokenizer = None
        self._prepared = False
        self.manifest: dict | None = None
        self.datasets: dict[str, PackedDataset] = {}

    def prepare_data(self) -> None:
        if self._prepared:  # the Trainer calls it again for each fit/validate/test
            return
        if self.url:
            self._prepare_remote()
        else:
            prepare(self.data, self.tokenizer_cfg, self.data_dir)
        self._prepared = True

    def _prepare_remote(self) -> None:
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        if self.data.mixture and self.data.num_workers:
            raise UserError(f"data.num_workers={self.data.num_workers}: a mixture streamed from an object store is "
                            "read in the training process; set data.num_workers=0 (or prepare it in a local or "
                            "shared folder, paths.data_dir=/path)")
        url = self.stream_url
        streaming.check_bucket(url)
        if not streaming.exists(url):
            if rank_zero_only.rank == 0:  # one process builds and publishes; the others wait for its manifest
                folder = prepare(self.data, self.tokenizer_cfg, self.data_dir, streamed=True)
                streaming.publish(folder, url, read_manifest(folder))
            else:
                streaming.wait_for(url, self.data.prepare_timeout_s)
        streaming.fetch_meta(url, self.prepared_dir)

    @property
    def prepared_dir(self) -> Path:
        """The prepared folder (streamed data: the local copy of its manifest and tokenizer)."""
        local = prepared_dir(self.data, self.tokenizer_cfg, self.data_dir, streamed=bool(self.url))
        return cache_dir() / "streamed" / local.name if self.url else local

    @property
    def stream_url(self) -> str | None:
        """Where the prepared data is streamed from (`data_dir` was a URL), else None."""
        return f"{self.url}/{self.prepared_dir.name}" if self.url else None

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        folder = self.prepared_dir
        if self.url:
            streaming.fetch_meta(self.stream_url, folder)
        self.manifest = manifest = read_manifest(folder)
        if not self.url:
            check_shards(folder, manifest, self.data.verify)
        self.tokenizer = load_tokenizer(folder / "tokenizer")
        check_tokenizer(manifest, self.tokenizer, folder)
        token_bytes = token_byte_lengths(self.tokenizer)
        eos = self.tokenizer.eos_token_id if self.data.document_mask else None
        if self.data.document_mask and eos is None:
            raise UserError("data.document_mask=true needs a tokenizer with an EOS token (the document separator)")
        self._collate = RowCollate(token_bytes, eos)
        for split in manifest["splits"]:
            if not self.url:  # streamed splits are opened by their dataloader (see _stream)
                self.datasets[split] = _split(folder, manifest, split, token_bytes, eos)

    @property
    def source_names(self) -> list[str]:
        """The sources of a mixture (`data.mixture`), in the order of their index in each row's `source`."""
        return list((self.manifest or {}).get("mixture", {}))

    def source_weights(self) -> list[float]:
        """Each source's normalized weight, from `data.mixture` (weights are not part of the prepared data)."""
        weights = {name: w for name, (w, _) in mixture_sources(self.data).items()}
        return [weights[name] for name in self.source_names]

    def train_sampler(self, start_batch: int = 0) -> GlobalBatchSampler | MixtureBatchSampler:
        """This process's sampler of training batches, from global batch `start_batch` on."""
        rank, world = self._rank_and_world()
        if self.source_names:
            rows = [self.manifest["mixture"][n]["splits"]["train"]["sequences"] for n in self.source_names]
            return MixtureBatchSampler(rows, self.source_weights(), self.data.batch_size, rank, world, self.seed,
                                       start_batch)
        return GlobalBatchSampler(len(self.datasets["train"]), self.data.batch_size, rank, world, self.seed,
                                  start_batch)

    @property
    def vocab_size(self) -> int:
        if self.tokenizer is None:
            raise RuntimeError("call setup() first")
        return len(self.tokenizer)

    def train_dataloader(self) -> DataLoader:
        if self.url and self.source_names:  # each source streamed, drawn by weight; resumes from batches_consumed
            rows = StreamedMixtureRows([self._stream(f"train/{n}") for n in self.source_names],
                                       self.train_sampler(), self._collate.item, self.batches_consumed)
            return DataLoader(rows, batch_size=self.data.batch_size)
        if self.url:  # LitData's loader: Lightning saves its state in checkpoints and restores it on resume
            return streaming.loader(self._stream("train"), self.data.batch_size, self.data.num_workers,
                                    self._collate, drop_last=True)
        return DataLoader(self.datasets["train"], batch_sampler=self.train_sampler(self.batches_consumed),
                          **self._workers())

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def eval_dataloader(self, split: str) -> DataLoader:
        """Every sequence of `split` once, sharded across processes, each process given as many rows (padding
        rows that count for nothing fill the last ones)."""
        if self.url and self.source_names:
            rows = StreamedMixtureEval([self._stream(f"{split}/{n}") for n in self.source_names], self._collate.item)
            return DataLoader(rows, batch_size=self.data.eval_batch_size or self.data.batch_size)
        if self.url:  # LitData gives each process its share of the split
            return streaming.loader(self._stream(split), self.data.eval_batch_size or self.data.batch_size,
                                    self.data.num_workers, self._collate, drop_last=False)
        rank, world = self._rank_and_world()
        sampler = RankSampler(len(self.datasets[split]), rank, world)
        dataset = self.datasets[split]
        if self.source_names:  # a mixture's sources interleaved, so that limit_val_batches still sees each
            dataset = Subset(dataset, interleaved([info["rows"] for info in self.manifest["splits"][split]["shards"]],
                                                  dataset.sources))
        dataset = PaddedEval(dataset, sampler.padded)
        return DataLoader(dataset, batch_size=self.data.eval_batch_size or self.data.batch_size, sampler=sampler,
                          **self._workers())

    def _stream(self, split: str):
        # Opened here, not in setup(): LitData reads the process group when a dataset is made, and setup() runs
        # before the Trainer starts the processes' group (llm-train prepares and sets up the data first)
        part, _, source = split.partition("/")
        train = part == "train"
        # a prepared URL source of the mixture is streamed from its own URL (data.prepared_source)
        url = self.manifest.get("mixture", {}).get(source, {}).get("url") if source else None
        location, split = (url, part) if url else (self.stream_url, split)
        return streaming.streaming_dataset(location, split, self.prepared_dir / "chunks", shuffle=train,
                                           seed=self.seed, drop_last=train)

    def _workers(self) -> dict:
        # A generator of its own: a DataLoader otherwise draws its workers' base seed from the global RNG each
        # time an iteration starts, which shifts the dropout masks of a resumed run against the uninterrupted one.
        return {"num_workers": self.data.num_workers, "persistent_workers": self.data.num_workers > 0,
                "generator": torch.Generator().manual_seed(self.seed)}

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # a process group of one's own
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Called right before the step that uses the batch (after any prefetching): counts consumption.
        if self.trainer is not None and self.trainer.training:
            self.batches_consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        # the prepared folder lets tools (llm-export, llm-generate) find the tokenizer of a checkpoint
        return {"batches_consumed": self.batches_consumed, "seed": self.seed, "prepared_dir": str(self.prepared_dir),
                "global_batch": self.data.batch_size * self._rank_and_world()[1]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the data order where the checkpoint left it; its position counts global batches, so the global
        batch (data.batch_size x processes) must be the one the checkpoint was trained with."""
        world = self._rank_and_world()[1]
        saved = state_dict.get("global_batch")
        if saved is not None and saved != self.data.batch_size * world:
            raise UserError(f"the checkpoint was trained with a global batch of {saved} sequences, this run has "
                            f"data.batch_size={self.data.batch_size} x {world} process(es) = "
                            f"{self.data.batch_size * world}: resume with data.batch_size={saved // world} (or "
                            "the checkpoint's process count), or start a new run dir; a changed batch would "
                            "replay and skip data")
        self.batches_consumed = state_dict["batches_consumed"]
        self.seed = state_dict.get("seed", self.seed)


def check_tokenizer(manifest: dict, tok, folder: Path) -> None:
    """Shards are only meaningful with the tokenizer that produced them."""
    want, have = manifest["tokenizer"], tokenizer_hash(tok)
    if have != want["hash"]:
        raise UserError(f"the tokenizer does not match the shards in {folder} (tokenizer hash {have}, vocab "
                        f"{len(tok)}; shards made with hash {want['hash']}, vocab {want['vocab_size']}): use the "
                        f"tokenizer saved in {folder / 'tokenizer'} or prepare the data again with this one")

