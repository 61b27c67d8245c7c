"""Weight-init schemes applied after a `transformers` model is built from its config."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from lightning_llm.errors import UserError

SCHEMES = ("hf", "normal", "scaled", "uniform")


@dataclass
class InitConfig:
    """`normal`: N(0, std) for linear and embedding weights, zero biases. `scaled`: as normal, with the
    residual output projections at std / sqrt(2 * num_layers) (GPT-2). `uniform`: U(-a, a) with the same
    variance as normal. `hf`: keep the architecture's own init."""

    scheme: str = "scaled"
    std: float = 0.02
    residual_proj: list[str] = field(default_factory=lambda: ["o_proj", "down_proj", "c_proj", "out_proj",
                                                              "dense_4h_to_h", "fc_out", "fc2", "wo", "w2"])


@torch.no_grad()
def init_weights(model: nn.Module, cfg: InitConfig, num_layers: int) -> None:
    """Every weight matrix (any parameter of 2+ dimensions: linear, embedding, GPT-2's `Conv1D`, stacked
    experts) follows the scheme and every bias is zeroed; norm weights keep their ones."""
    if cfg.scheme not in SCHEMES:
        raise UserError(f"unknown model.init.scheme={cfg.scheme!r}; choose one of {list(SCHEMES)}")
    if cfg.scheme == "hf":
        return
    residual_std = cfg.std / math.sqrt(2 * num_layers)
    for name, param in model.named_parameters(remove_duplicate=True):  # a tied embedding is filled once
        parts = name.split(".")
        if parts[-1] == "bias":
            param.zero_()
        elif param.ndim >= 2:
            owner = parts[-2] if parts[-1] == "weight" and len(parts) > 1 else parts[-1]
            is_residual = owner in cfg.residual_proj
            _fill(param, cfg.scheme, residual_std if cfg.scheme == "scaled" and is_residual else cfg.std)


def _fill(weight: torch.Tensor, scheme: str, std: float) -> None:
    if scheme == "uniform":
        bound = std * math.sqrt(3.0)  # U(-a, a) has variance a^2 / 3
        weight.uniform_(-bound, bound)
    else:
        weight.normal_(0.0, std)
