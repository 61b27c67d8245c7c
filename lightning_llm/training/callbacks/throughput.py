"""Throughput and MFU: tokens/s, samples/s, model FLOPs utilization and peak memory, as `perf/*`."""

from __future__ import annotations

import resource
import sys
import time

import lightning as L
import torch

from lightning_llm.models.flops import flops_per_token, peak_flops

_PRECISION_DTYPE = {"bf16": torch.bfloat16, "16": torch.float16}


class ThroughputMFU(L.Callback):
    """Logs every `every_n_steps` optimizer steps; evaluation time is left out of the measurement."""

    def __init__(self, every_n_steps: int = 10):
        self.every_n_steps = every_n_steps
        self._start: float | None = None
        self._tokens = self._samples = 0
        self._peak: float | None = None
        self._flops_per_token = 0.0
        self._logged_step = -1
        self.last: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        seq_len = pl_module.model.config.max_position_embeddings
        self._flops_per_token = flops_per_token(pl_module.model, seq_len)
        precision = str(trainer.precision)
        dtype = next((d for p, d in _PRECISION_DTYPE.items() if precision.startswith(p)), torch.float32)
        self._peak = peak_flops(pl_module.device, dtype)
        if self._peak:  # a device's peak, times the processes sharing the work
            self._peak *= trainer.world_size

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self._start is None:
            self._sync(pl_module)
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._tokens += batch["input_ids"].numel() * trainer.world_size
        self._samples += batch["input_ids"].shape[0] * trainer.world_size
        step = trainer.global_step  # advances once per optimizer step, not per accumulated micro-batch
        if step % self.every_n_steps or step == self._logged_step:
            return
        self._logged_step = step
        self._sync(pl_module)
        elapsed = time.perf_counter() - self._start
        tokens_per_s = self._tokens / elapsed
        self.last = {"perf/tokens_per_s": tokens_per_s, "perf/samples_per_s": self._samples / elapsed,
                     "perf/peak_mem_gb": _peak_memory_gb(pl_module.device)}
        if self._peak:
            self.last["perf/mfu"] = tokens_per_s * self._flops_per_token / self._peak
        pl_module.log_dict(self.last, on_step=True, on_epoch=False, rank_zero_only=True)
        self._start, self._tokens, self._samples = time.perf_counter(), 0, 0

    def on_validation_start(self, trainer: L.Trainer, pl_module) -> None:
        self._start = None  # restart the clock after evaluation
        self._tokens = self._samples = 0

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (1e9 if sys.platform == "darwin" else 1e6)
