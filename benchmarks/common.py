"""Shared pieces of the training benchmarks: random token shards and a step timer for Lightning."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np


def random_shard(vocab: int, seq_len: int, rows: int, seed: int = 0) -> Path:
    """A `.npy` shard of random tokens in the layout `PackedDataset` reads ([rows, seq_len + 1])."""
    path = Path(tempfile.mkdtemp(prefix="llm-bench-")) / "train-00000.npy"
    np.save(path, np.random.default_rng(seed).integers(0, vocab, (rows, seq_len + 1), dtype=np.uint16))
    return path


class StepTimer(L.Callback):
    """Wall time per optimizer step after `warmup` steps, up to the end of the last step (not `on_fit_end`)."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and not self.start:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start:
            self.steps += 1
            self.end = time.perf_counter()

    @property
    def seconds_per_step(self) -> float:
        return (self.end - self.start) / max(1, self.steps)
