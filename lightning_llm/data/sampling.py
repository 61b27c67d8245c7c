"""A resumable, distribution-aware batch sampler: exact resume and world-size-independent batches.

Global batch `k` is a fixed slice of epoch `k // batches_per_epoch`'s seeded permutation; rank `r` takes
its contiguous share of it. So N processes see, step for step, the same global batches as one process
with the same global batch size, and resuming at batch `k` replays and skips nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

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
