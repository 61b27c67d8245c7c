"""AdamW (or Muon for the hidden matrices) with decay / no-decay parameter groups, and the warmup + decay
schedule (`lightning_llm.training.schedule`), by steps or by the wall-clock budget."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from lightning_llm.errors import UserError
from lightning_llm.training.muon import Muon, MuonWithAdamW, muon_split
from lightning_llm.training.schedule import SCHEDULE_BY, SCHEDULES, WarmupDecayLR, lr_factor

OPTIMIZERS = ("adamw", "muon")
__all__ = ["OPTIMIZERS", "SCHEDULES", "MuonConfig", "OptimConfig", "build_optimizer", "lr_factor", "param_groups"]

log = logging.getLogger(__name__)


@dataclass
class MuonConfig:
    """`optim.muon.*`: Muon's own keys, for the hidden weight matrices (optim.name=muon)."""

    lr: float = 0.02
    momentum: float = 0.95
    nesterov: bool = True
    weight_decay: float = 0.0
    ns_steps: int = 5  # Newton-Schulz iterations of the orthogonalization
    adjust_lr_fn: str | None = None  # None/original: lr x sqrt(max(1, rows/cols)); match_rms_adamw: AdamW's scale
    ns_dtype: str = "auto"  # the orthogonalization's dtype: auto (bf16 where native, else fp32) | bf16 | fp32


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | muon (Muon for hidden 2D weights, AdamW with lr/betas/... for the rest)
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine | linear | wsd | constant
    schedule_by: str = "auto"  # auto: the wall-clock budget when trainer.max_time is set, else steps | steps | time
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # final lr as a fraction of lr
    decay_fraction: float = 0.2  # wsd: the last fraction of steps that decays to min_lr
    fused: bool | None = None  # one fused kernel per step; None: fused for plain CPU/CUDA tensors, else torch's default
    foreach: bool | None = None  # batched multi-tensor update; None: torch's default
    muon: MuonConfig = field(default_factory=MuonConfig)


def param_groups(model: nn.Module, weight_decay: float, params: list[nn.Parameter] | None = None) -> list[dict]:
    """Decay matrices of linear layers only; never norms, biases or embeddings (tied heads included).
    `params`: only these of the model's parameters (default: all)."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or "norm" in type(module).__name__.lower():
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    only = None if params is None else {id(p) for p in params}
    decay, rest, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen or (only is not None and id(p) not in only):
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


def build_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: float,
                    clock: Callable[[], tuple[float, float]] | None = None, clipped_under_amp: bool = False):
    """The optimizer and its per-step schedule, as Lightning's `configure_optimizers` dict.

    `total_steps` is the Trainer's estimate (`estimated_stepping_batches`): infinite when neither
    `trainer.max_steps` nor `trainer.max_epochs` ends the run. `clock` (elapsed and budget seconds, see
    `schedule.trainer_clock`) makes the decay follow the wall-clock budget (optim.schedule_by auto or time).
    """
    if cfg.schedule not in SCHEDULES:
        raise UserError(f"unknown optim.schedule={cfg.schedule!r}; choose one of {list(SCHEDULES)}")
    if cfg.schedule_by not in SCHEDULE_BY:
        raise UserError(f"unknown optim.schedule_by={cfg.schedule_by!r}; choose one of {list(SCHEDULE_BY)}")
    if cfg.name not in OPTIMIZERS:
        raise UserError(f"unknown optim.name={cfg.name!r}; choose one of {list(OPTIMIZERS)} (optim=adamw|muon)")
    if cfg.schedule_by == "time" and clock is None:
        raise UserError("optim.schedule_by=time follows the wall-clock budget, but this run has none: set "
                        "trainer.max_time (e.g. ++trainer.max_time=00:00:05:00), or optim.schedule_by=auto")
    if cfg.schedule_by == "steps":
        clock = None
    if math.isinf(total_steps) and clock is None:
        if cfg.schedule != "constant":
            raise UserError(f"optim.schedule={cfg.schedule} decays toward the last step, but this run has none "
                            "(trainer.max_steps=-1 and trainer.max_epochs=-1): set trainer.max_steps (or "
                            "trainer.max_epochs, or trainer.max_time), or use optim.schedule=constant")
        total_steps = cfg.warmup_steps + 1
    if not math.isinf(total_steps):
        total_steps = int(total_steps)
        cfg = clamp_warmup(cfg, total_steps)
    opt = _muon(model, cfg) if cfg.name == "muon" else _adamw(model, cfg, param_groups(model, cfg.weight_decay))
    if clipped_under_amp:
        let_lightning_unscale(opt)
    sched = WarmupDecayLR(opt, cfg, total_steps, clock)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _adamw(model: nn.Module, cfg: OptimConfig, groups: list[dict]) -> torch.optim.AdamW:
    extra = {k: v for k, v in (("fused", cfg.fused), ("foreach", cfg.foreach)) if v is not None}
    if not extra and _fusable([p for g in groups for p in g["params"]]):
        # torch's CPU default is a loop over parameters: the fused kernel makes a whole step ~7% faster at
        # nanoGPT's CPU shape (benchmarks/step_overhead)
        extra["fused"] = True
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **extra)


def let_lightning_unscale(optimizer: torch.optim.Optimizer) -> None:
    """Let Lightning clip the gradients of a fused AdamW under bf16-mixed / 16-mixed.

    A fused AdamW tells a GradScaler it unscales gradients inside its kernel (`_step_supports_amp_scaling`), and
    Lightning's MixedPrecision plugin then refuses to clip, since it would clip still-scaled gradients. Switched
    off, the scaler unscales before clipping as for any optimizer (16-mixed), and under bf16-mixed, which has no
    scaler, there is nothing to unscale: the same fused kernel steps on the clipped gradients either way.
    """
    # (MuonWithAdamW claims no such step: a scaler unscales all its gradients, then its AdamW steps)
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer._step_supports_amp_scaling = False


def clips_under_amp(trainer) -> bool:
    """Whether `trainer` clips gradients under a mixed-precision (autocast) plugin."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    return bool(trainer.gradient_clip_val) and isinstance(trainer.precision_plugin, MixedPrecision)


def _muon(model: nn.Module, cfg: OptimConfig) -> MuonWithAdamW:
    if not hasattr(torch.optim, "Muon"):
        raise UserError(f"optim=muon needs torch.optim.Muon (torch >= 2.9); this is torch {torch.__version__}")
    hidden, rest = muon_split(model)
    if not hidden:
        raise UserError("optim=muon found no hidden 2D weight matrices in this model; use optim=adamw")
    m = cfg.muon
    muon = Muon(hidden, lr=m.lr, weight_decay=m.weight_decay, momentum=m.momentum, nesterov=m.nesterov,
                ns_steps=m.ns_steps, adjust_lr_fn=m.adjust_lr_fn, ns_dtype=m.ns_dtype)
    return MuonWithAdamW(muon, _adamw(model, cfg, param_groups(model, cfg.weight_decay, rest)))


def _fusable(params: list[torch.Tensor]) -> bool:
    """Plain floating-point tensors on a CPU or CUDA device (not DTensors: torch's default handles those)."""
    return bool(params) and all(type(p.data) is torch.Tensor and p.is_floating_point()
                                and p.device.type in ("cpu", "cuda") for p in params)
