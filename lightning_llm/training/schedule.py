"""Learning-rate schedules: warmup, then cosine / linear / WSD decay to a floor, or constant, following the
optimizer steps or a wall-clock budget (`trainer.max_time`).

A run bounded by time does not know its number of steps: its schedule follows the fraction of the budget
spent, read from Lightning's `Timer` (whose elapsed time the checkpoint keeps, so a resumed run continues
where it stopped), one step ahead (the median of recent step times), so the last step before the budget
runs out trains at the floor.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

SCHEDULES = ("cosine", "linear", "wsd", "constant")
SCHEDULE_BY = ("auto", "steps", "time")

# (elapsed seconds, budget seconds) of the training run so far
Clock = Callable[[], tuple[float, float]]


def decay_shape(schedule: str, progress: float, min_lr_ratio: float, decay_fraction: float) -> float:
    """The decay part of the multiplier at `progress` in [0, 1] (the fraction of the run it decays over; for
    WSD, of the whole run, the last `decay_fraction` of it decaying)."""
    progress = min(1.0, max(0.0, progress))
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - (1 - min_lr_ratio) * progress
    stable = 1.0 - decay_fraction  # wsd
    if progress <= stable:
        return 1.0
    return 1.0 - (1 - min_lr_ratio) * (progress - stable) / max(decay_fraction, 1e-12)


def lr_factor(step: int, total_steps: int, cfg: Any) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based) of a run of `total_steps` steps: linear
    warmup over `cfg.warmup_steps`, then the decay over the steps after it (WSD: over the last
    `cfg.decay_fraction` of all steps)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":
        decay_steps = int(cfg.decay_fraction * total_steps)
        decay_start = total_steps - decay_steps
        progress = (1 - cfg.decay_fraction) + cfg.decay_fraction * (step - decay_start) / max(1, decay_steps)
        return decay_shape("wsd", progress if step >= decay_start else 0.0, cfg.min_lr_ratio, cfg.decay_fraction)
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return decay_shape(cfg.schedule, progress, cfg.min_lr_ratio, cfg.decay_fraction)


def budget_factor(step: int, progress: float, cfg: Any) -> float:
    """Multiplier at optimizer step `step` when `progress` of the budget will be spent by its end: the warmup
    (in steps) times the decay over the whole budget."""
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    return warmup * decay_shape(cfg.schedule, progress, cfg.min_lr_ratio, cfg.decay_fraction)


class WarmupDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """Sets every param group's lr to its initial lr times the schedule's multiplier, once per optimizer step.

    Args:
        cfg: an `OptimConfig` (schedule, warmup_steps, min_lr_ratio, decay_fraction).
        total_steps: the run's steps (`math.inf` when only the clock ends it).
        clock: when given, the decay follows the budget it reports, or the steps, whichever ends first.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Any, total_steps: float, clock: Clock | None = None):
        self.cfg, self.total_steps, self.clock = cfg, total_steps, clock
        self._step_times: deque[float] = deque(maxlen=31)
        self._last_time: float | None = None
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        if self.clock is None:
            return lr_factor(step, int(self.total_steps), self.cfg)
        now = time.monotonic()
        if self._last_time is not None:
            self._step_times.append(now - self._last_time)
        self._last_time = now
        elapsed, budget = self.clock()
        ahead = statistics.median(self._step_times) if self._step_times else 0.0  # evaluations are outliers
        progress = (elapsed + ahead) / budget if budget > 0 else 1.0
        if not math.isinf(self.total_steps):
            progress = max(progress, (step + 1) / self.total_steps)
        return budget_factor(step, progress, self.cfg)

    def get_lr(self) -> list[float]:
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    # plain values only: a checkpoint loads with weights_only=True; cfg, total_steps and the clock come from the run
    _STATE = ("last_epoch", "_step_count", "base_lrs", "_last_lr")

    def state_dict(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in self._STATE if k in self.__dict__}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: state_dict[k] for k in self._STATE if k in state_dict})


def trainer_clock(trainer: Any) -> Clock | None:
    """The (elapsed, budget) of a Trainer run with `max_time`: its `Timer` callback, whose elapsed time counts
    everything from the start of training (validation, sampling and checkpoints included) and is saved in
    checkpoints; None without a time limit."""
    from lightning.pytorch.callbacks import Timer

    timer = next((c for c in getattr(trainer, "callbacks", []) or [] if isinstance(c, Timer)), None)
    if timer is None or timer.time_remaining() is None:
        return None

    def clock() -> tuple[float, float]:
        elapsed = timer.time_elapsed("train")
        return elapsed, elapsed + timer.time_remaining("train")

    return clock
