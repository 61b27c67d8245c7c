"""FLOPs per token of a decoder-only transformer, and the peak FLOP/s of the device it runs on."""

from __future__ import annotations

import functools
import time

import torch
from transformers import PreTrainedModel

# Dense bf16 tensor-core peaks (FLOP/s) for devices Lightning's table may not know; by name substring.
_CUDA_PEAKS_BF16 = {"H200": 989e12, "H100": 989e12, "GH200": 989e12, "B200": 2250e12, "A100": 312e12,
                    "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token: 6 per matmul weight (forward + backward), the LM head counted once, plus
    attention's 12 * layers * hidden * seq_len (PaLM appendix B, as nanoGPT's `estimate_mfu`)."""
    cfg = model.config
    hidden, layers = cfg.hidden_size, cfg.num_hidden_layers
    matmul_params = model.num_parameters(exclude_embeddings=True)
    head = model.get_output_embeddings()
    if head is not None and head.weight is model.get_input_embeddings().weight:
        matmul_params += head.weight.numel()  # a tied head is counted among the embeddings, not the matmuls
    return 6 * matmul_params + 12 * layers * hidden * seq_len


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Peak FLOP/s: a table for GPUs, a short matmul measurement for CPUs."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in _CUDA_PEAKS_BF16.items():
            if key in name:
                return peak if dtype in (torch.bfloat16, torch.float16) else peak / 2  # tf32 ~ half
        from lightning.fabric.utilities.throughput import get_available_flops

        return get_available_flops(device, dtype)
    if device.type == "cpu":
        return measured_cpu_peak(dtype, torch.get_num_threads())
    return None


@functools.cache
def measured_cpu_peak(dtype: torch.dtype, threads: int, size: int = 1024, seconds: float = 0.5) -> float:
    """Best matmul FLOP/s of this CPU at `dtype` over ~`seconds` (cached per process)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b  # warm up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best
