"""Throughput, MFU and energy: tokens/s, samples/s, model FLOPs utilization, peak memory and the run's energy
(joules, kWh, tokens per joule, grams of CO2 at a grid intensity), as `perf/*`."""

from __future__ import annotations

import resource
import sys
import time

import lightning as L
import torch

from lightning_llm.models.flops import flops_per_token, peak_flops
from lightning_llm.training.callbacks.energy import EnergyMeter
from lightning_llm.training.tracking import logging_step

_PRECISION_DTYPE = {"bf16": torch.bfloat16, "16": torch.float16}


class ThroughputMFU(L.Callback):
    """Logs every `every_n_steps` optimizer steps; evaluation time is left out of the throughput, not of the
    energy (the energy of the whole fit so far, summed over processes, per token trained).

    Args:
        watts_per_core: the power of one busy core where energy can only be estimated from CPU time.
        grid_co2_g_per_kwh: grams of CO2 per kWh of the electricity (`perf/co2_g`).
    """

    def __init__(self, every_n_steps: int = 10, watts_per_core: float = 10.0, grid_co2_g_per_kwh: float = 400.0):
        self.every_n_steps = every_n_steps
        self.watts_per_core, self.grid_co2_g_per_kwh = watts_per_core, grid_co2_g_per_kwh
        self.energy: EnergyMeter | None = None
        self._tokens_total = 0
        self._start: float | None = None
        self._tokens = self._samples = 0
        self._peak: float | None = None
        self._flops_per_token = 0.0
        self._flops_seq_len = -1
        self._logged_step = -1
        self.last: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        self._flops_seq_len = -1  # attention FLOPs follow the rows trained, counted at the first batch
        precision = str(trainer.precision)
        dtype = next((d for p, d in _PRECISION_DTYPE.items() if precision.startswith(p)), torch.float32)
        self._peak = peak_flops(pl_module.device, dtype)
        if self._peak:  # a device's peak, times the processes sharing the work
            self._peak *= trainer.world_size
        self.energy = EnergyMeter(pl_module.device, self.watts_per_core)
        self.energy.start()
        self._tokens_total = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self._start is None:
            self._sync(pl_module)
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        seq_len = batch["input_ids"].shape[1]
        if seq_len != self._flops_seq_len:  # the rows' length, not the model's context (8,192 for SmolLM2)
            self._flops_per_token, self._flops_seq_len = flops_per_token(pl_module.model, seq_len), seq_len
        self._tokens += batch["input_ids"].numel() * trainer.world_size
        self._tokens_total += batch["input_ids"].numel() * trainer.world_size
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
        self.last.update(self._energy(trainer, pl_module))
        if trainer.is_global_zero:  # straight to the loggers: `self.log` costs ~0.6 ms per value at small shapes
            for logger in trainer.loggers:
                logger.log_metrics(self.last, step=logging_step(trainer))
        self._start, self._tokens, self._samples = time.perf_counter(), 0, 0

    def on_validation_start(self, trainer: L.Trainer, pl_module) -> None:
        self._start = None  # restart the clock after evaluation
        self._tokens = self._samples = 0

    def _energy(self, trainer: L.Trainer, pl_module) -> dict[str, float]:
        """The fit's energy so far over all processes: each measures its own GPU or CPU time; RAPL counts
        whole CPU packages, so one process a node reads it."""
        if self.energy is None:
            return {}
        rapl = self.energy.source.startswith("rapl")
        mine = self.energy.joules() if not rapl or trainer.local_rank == 0 else 0.0
        total = mine
        if trainer.world_size > 1:
            total = float(trainer.strategy.reduce(torch.tensor(mine, device=pl_module.device), reduce_op="sum"))
        kwh = total / 3.6e6
        return {"perf/energy_j": total, "perf/energy_kwh": kwh,
                "perf/tokens_per_j": self._tokens_total / max(total, 1e-9), "perf/co2_g": kwh * self.grid_co2_g_per_kwh}

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (1e9 if sys.platform == "darwin" else 1e6)
