"""AdamW with decay / no-decay parameter groups, and warmup + cosine / WSD / constant schedules."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from lightning_llm.errors import UserError

SCHEDULES = ("cosine", "wsd", "constant")

log = logging.getLogger(__name__)


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # final lr as a fraction of lr
    decay_fraction: float = 0.2  # wsd: the last fraction of steps that decays to min_lr
    fused: bool | None = None  # one fused kernel per step (CUDA, and CPU in recent torch); None: torch's default
    foreach: bool | None = None  # batched multi-tensor update; None: torch's default


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices of linear layers only; never norms, biases or embeddings (tied heads included)."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or "norm" in type(module).__name__.lower():
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, rest, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (rest if id(p) in no_decay or p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def clamp_warmup(cfg: OptimConfig, total_steps: int) -> OptimConfig:
    """A warmup as long as the run would never reach the peak lr: cut to a tenth of the run, with a warning."""
    if cfg.warmup_steps < total_steps:
        return cfg
    warmup = total_steps // 10
    log.warning("optim.warmup_steps=%d is not below the %d training steps: warming up for %d steps instead "
                "(set optim.warmup_steps to choose)", cfg.warmup_steps, total_steps, warmup)
    return replace(cfg, warmup_steps=warmup)


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of the peak lr at `step` (0-based)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = total_steps - int(cfg.decay_fraction * total_steps)
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
    return 1.0 - (1 - cfg.min_lr_ratio) * progress


def build_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: float):
    """AdamW over the decay groups and a per-step LambdaLR; the Lightning `configure_optimizers` dict.

    `total_steps` is the Trainer's estimate (`estimated_stepping_batches`): infinite when neither
    `trainer.max_steps` nor `trainer.max_epochs` ends the run, which only a constant schedule can follow.
    """
    if cfg.schedule not in SCHEDULES:
        raise UserError(f"unknown optim.schedule={cfg.schedule!r}; choose one of {list(SCHEDULES)}")
    if math.isinf(total_steps):
        if cfg.schedule != "constant":
            raise UserError(f"optim.schedule={cfg.schedule} decays toward the last step, but this run has none "
                            "(trainer.max_steps=-1 and trainer.max_epochs=-1): set trainer.max_steps (or "
                            "trainer.max_epochs), or use optim.schedule=constant")
        total_steps = cfg.warmup_steps + 1
    total_steps = int(total_steps)
    cfg = clamp_warmup(cfg, total_steps)
    extra = {k: v for k, v in (("fused", cfg.fused), ("foreach", cfg.foreach)) if v is not None}
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                            eps=cfg.eps, **extra)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total_steps, cfg))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
