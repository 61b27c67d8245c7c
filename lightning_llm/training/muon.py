"""Muon for the hidden weight matrices, AdamW for the rest (embeddings, head, norms, biases): the split of the
modded-nanogpt speedrun, as one optimizer that Lightning's automatic optimization, clipping, LR schedulers
and checkpoints handle like any other."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_llm.training.precision import native_bf16


class Muon(torch.optim.Muon):
    """`torch.optim.Muon` with its Newton-Schulz iteration in fp32 where bf16 is emulated: torch runs it in
    bf16 always, which on a CPU without native bf16 (AVX2) made a step 4x slower than AdamW's whole step
    (`ns_dtype`: "auto" = bf16 on CUDA and on CPUs with native bf16, else fp32)."""

    def __init__(self, params: Any, ns_dtype: str = "auto", **kwargs: Any):
        super().__init__(params, **kwargs)
        if ns_dtype not in ("auto", "bf16", "fp32"):
            raise ValueError(f"ns_dtype={ns_dtype!r}: choose auto, bf16 or fp32")
        self.ns_dtype = ns_dtype

    def _fp32(self) -> bool:
        if self.ns_dtype != "auto":
            return self.ns_dtype == "fp32"
        device = next((p.device for g in self.param_groups for p in g["params"]), torch.device("cpu"))
        return not native_bf16(device)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if not self._fp32():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, bufs = [], [], []
            self._init_group(group, params, grads, bufs)
            for param, grad, buf in zip(params, grads, bufs, strict=True):  # torch's _single_tensor_muon
                buf.lerp_(grad, 1 - group["momentum"])
                update = grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
                update = _newton_schulz_fp32(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(update, alpha=-_adjusted_lr(group["lr"], group["adjust_lr_fn"], param.shape))
        return loss


def _newton_schulz_fp32(grad: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                        eps: float) -> torch.Tensor:
    """torch's `_zeropower_via_newtonschulz` (Keller Jordan's quintic iteration) in fp32."""
    a, b, c = coefficients
    x = grad.float()
    if grad.size(0) > grad.size(1):
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if grad.size(0) > grad.size(1) else x).to(grad.dtype)


def _adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * max(1.0, rows / cols) ** 0.5
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * max(rows, cols) ** 0.5
    return lr


def muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden 2D weight matrices, everything else): the input and output embeddings (tied or not) are not
    hidden matrices, whatever their shape."""
    outer = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
             for p in m.parameters()}
    hidden, rest, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (hidden if p.ndim == 2 and id(p) not in outer else rest).append(p)
    return hidden, rest


class MuonWithAdamW(torch.optim.Optimizer):
    """Steps a `torch.optim.Muon` and a `torch.optim.AdamW` together. Its `param_groups` are theirs (Muon's
    first), so an LR scheduler scales both and gradient clipping sees every parameter; its state dict holds
    both optimizers' states."""

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw
        super().__init__(muon.param_groups + adamw.param_groups, {})  # the same group dicts, not copies

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups  # loading made new group dicts
