"""`trainer.precision: auto`: bf16 mixed precision where the hardware runs bf16 matmuls fast, else fp32."""

from __future__ import annotations

import torch


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Return `precision` unchanged unless it is "auto".

    On CPUs with native bf16 (AVX512-BF16/AMX) bf16 matmuls run ~2.3x fp32; on CPUs without it they are
    emulated and slower than fp32, so "auto" only picks bf16 where it pays.
    """
    if precision != "auto":
        return precision
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_cuda:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if _cpu_has_native_bf16() else "32-true"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on `device`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()
