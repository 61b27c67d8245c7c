"""A resumable, distribution-aware batch sampler: exact resume and world-size-independent batches.

Global batch `k` is a fixed slice of epoch `k // batches_per_epoch`'s seeded permutation; rank `r` takes
its contiguous share of it. So N processes see, step for step, the same global batches as one process
with the same global batch size, and resuming at batch `k` replays and skips nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start_batch: int = 0):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.global_batch = batch_size * world_size
        self.batches_per_epoch = num_samples // self.global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(f"{num_samples} training sequences cannot fill one global batch of {self.global_batch} "
                             f"({batch_size} x {world_size} processes): lower data.batch_size or add data")
        self.next_batch = start_batch  # global batch index, counted across epochs

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        epoch, position = divmod(self.next_batch, self.batches_per_epoch)
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch))
        for b in range(position, self.batches_per_epoch):
            start = b * self.global_batch + self.rank * self.batch_size
            self.next_batch = epoch * self.batches_per_epoch + b + 1
            yield order[start:start + self.batch_size].tolist()


class RankSampler(Sampler[int]):
    """Every `world_size`-th index from `rank`, padded so every process gets as many: indices past
    `num_samples` stand for padding rows (see `PaddedEval`), which evaluation leaves out of its sums.

    Equal counts matter: under a sharded strategy a process with one batch fewer would wait forever in the
    others' collectives.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.padded = -(-num_samples // world_size) * world_size
        self.indices = range(rank, self.padded, world_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


_STEP = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: consecutive rows land evenly spread over [0, 2^64)
_CHUNK = 1 << 22  # rows counted at once when a resume counts the draws before it


class MixtureBatchSampler(Sampler[list[int]]):
    """Global batches drawn from several sources by weight, deterministic and resumable, like `GlobalBatchSampler`.

    Global row `i` goes to the source whose share of [0, 2^64) holds `(offset + i * 2^64/phi) mod 2^64` (a Weyl
    sequence, seeded by `seed`): every prefix of the draw has each source's share within a few rows of its weight,
    with no randomness to wait out, and row `i`'s source is known without replaying the ones before it. A source's
    `j`-th draw is row `j mod n` of that source's own seeded permutation for epoch `j // n`: a small source
    repeats (in a new order each time) while a large one goes on.

    Args:
        source_rows: each source's number of rows; the dataset holds them one source after another.
        weights: each source's share of the draw (normalized).
    """

    def __init__(self, source_rows: list[int], weights: list[float], batch_size: int, rank: int = 0,
                 world_size: int = 1, seed: int = 0, start_batch: int = 0):
        if len(source_rows) != len(weights) or not source_rows or min(source_rows) <= 0 or min(weights) <= 0:
            raise ValueError(f"every source needs rows and a weight above 0: rows {source_rows}, weights {weights}")
        self.source_rows = np.asarray(source_rows, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.source_rows)[:-1]])
        w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.bounds = np.asarray([int(c * 2.0**64) for c in np.cumsum(w)[:-1]], dtype=np.uint64)
        self.offset = np.random.default_rng(seed).integers(0, 2**63, dtype=np.uint64)
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.global_batch = batch_size * world_size
        self.batches_per_epoch = int(self.source_rows.sum()) // self.global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(f"{int(self.source_rows.sum())} training sequences cannot fill one global batch of "
                             f"{self.global_batch} ({batch_size} x {world_size} processes): lower data.batch_size "
                             "or add data")
        self.next_batch = start_batch
        self._perms: dict[int, tuple[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.batches_per_epoch

    def sources(self, start: int, stop: int) -> np.ndarray:
        """The source of each global row in [start, stop)."""
        return self.sources_of(np.arange(start, stop, dtype=np.uint64))

    def sources_of(self, rows: np.ndarray) -> np.ndarray:
        """The source of each of the global rows `rows`."""
        return np.searchsorted(self.bounds, rows.astype(np.uint64) * np.uint64(_STEP) + self.offset, side="right")

    def rank_rows(self, start_batch: int, stop_batch: int) -> np.ndarray:
        """The global rows this process takes in global batches [start_batch, stop_batch), in order."""
        batches = np.arange(start_batch, stop_batch, dtype=np.int64)[:, None] * self.global_batch
        return (batches + self.rank * self.batch_size + np.arange(self.batch_size)).ravel()

    def rank_counts(self, stop_batch: int) -> np.ndarray:
        """How many rows this process drew from each source in global batches [0, stop_batch)."""
        total = np.zeros(len(self.source_rows), dtype=np.int64)
        step = max(1, _CHUNK // self.batch_size)
        for lo in range(0, stop_batch, step):
            total += np.bincount(self.sources_of(self.rank_rows(lo, min(stop_batch, lo + step))),
                                 minlength=len(total))
        return total

    def counts(self, start: int, stop: int) -> np.ndarray:
        """How many of the global rows in [start, stop) each source gave."""
        total = np.zeros(len(self.source_rows), dtype=np.int64)
        for lo in range(start, stop, _CHUNK):
            total += np.bincount(self.sources(lo, min(stop, lo + _CHUNK)), minlength=len(total))
        return total

    def __iter__(self) -> Iterator[list[int]]:
        first = self.next_batch
        end = first - first % self.batches_per_epoch + self.batches_per_epoch  # Lightning's epoch ends there
        drawn = self.counts(0, first * self.global_batch)
        for b in range(first, end):
            source = self.sources(b * self.global_batch, (b + 1) * self.global_batch)
            draw = np.empty(self.global_batch, dtype=np.int64)  # each row's draw number within its source
            for s in np.unique(source):
                mine = source == s
                draw[mine] = drawn[s] + np.arange(int(mine.sum()))
                drawn[s] += int(mine.sum())
            lo = self.rank * self.batch_size
            self.next_batch = b + 1
            yield [self._row(int(s), int(j)) for s, j in zip(source[lo:lo + self.batch_size],
                                                              draw[lo:lo + self.batch_size], strict=True)]

    def _row(self, source: int, draw: int) -> int:
        epoch, position = divmod(draw, int(self.source_rows[source]))
        if self._perms.get(source, (None,))[0] != epoch:
            order = np.random.default_rng([self.seed, source, epoch]).permutation(int(self.source_rows[source]))
            self._perms[source] = (epoch, order)
        return int(self.starts[source] + self._perms[source][1][position])


def interleaved(shard_rows: list[int], shard_sources: list[int]) -> list[int]:
    """The rows of a mixture's split (each source's rows one after another) in an order where every prefix holds
    each source's rows in proportion to its size: row j of n of a source sorts at (j + 0.5) / n."""
    source_of_row = np.repeat(np.asarray(shard_sources), shard_rows)
    key = np.empty(len(source_of_row))
    for s in np.unique(source_of_row):
        mine = np.flatnonzero(source_of_row == s)
        key[mine] = (np.arange(len(mine)) + 0.5) / len(mine)
    return np.argsort(key, kind="stable").tolist()
