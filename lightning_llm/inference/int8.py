"""int8 inference on CPU: PyTorch's fbgemm dynamic-int8 linears for the int8 weights `llm-export quantize=int8`
writes (see `lightning_llm.export.quantize`).

torchao 0.18 has no fast int8 CPU kernel (its int8 linears ran at 0.70-1.03x of fp32 here), so
`cpu_int8_kernels` moves the same int8 weights and scales into fbgemm dynamic-int8 linears (activations
quantized to 8 bits per call), and quantizes the tied output head the same way: the biggest matrix of a
small model, kept in float on disk because it is also the input embedding. `load_model` does this by itself.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def is_int8(model: torch.nn.Module) -> bool:
    return any(_is_torchao_int8(m) for m in model.modules())


class DynamicInt8Linear(torch.nn.Module):
    """`x @ W.T + b` with `W` int8 per output channel and `x` quantized to uint8 per call (fbgemm/x86)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, reduce_range: bool):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.packed = torch.ops.quantized.linear_prepack(weight, bias)
        self.reduce_range = reduce_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(x.float(), self.packed, reduce_range=self.reduce_range)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, reduce_range={self.reduce_range}"


@torch.no_grad()
def cpu_int8_kernels(model: torch.nn.Module) -> torch.nn.Module:
    """Swap torchao int8 linears (and the float output head) for `DynamicInt8Linear`, in place.

    Without these kernels (a PyTorch build without fbgemm, or a later one that dropped them) the model stays
    as torchao made it, with a warning: same results, torchao's speed.
    """
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        log.warning("this PyTorch has no fbgemm int8 kernels: the int8 model runs on torchao's (slower) path")
        return model
    # Without VNNI, fbgemm's u8*s8 products can saturate int16: it needs 7-bit activations (less accurate).
    reduce_range = not _has_vnni()
    head = model.get_output_embeddings()
    with warnings.catch_warnings():  # PyTorch flags its quantized tensor types as deprecated; they still run
        warnings.simplefilter("ignore")
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if _is_torchao_int8(child) or (child is head and isinstance(head, torch.nn.Linear)):
                    setattr(parent, name, DynamicInt8Linear(_qint8(child), child.bias, reduce_range))
    return model


def _qint8(linear: torch.nn.Linear) -> torch.Tensor:
    """The weight as a per-channel qint8 tensor: torchao's int8 values and scales, or quantized here."""
    w = linear.weight
    if _is_torchao_int8(linear):
        return torch._make_per_channel_quantized_tensor(w.qdata, w.scale.flatten().double(),
                                                        w.zero_point.flatten().long(), 0)
    scale = w.detach().abs().amax(dim=1).clamp(min=1e-8).double() / 127  # symmetric, as torchao's
    return torch.quantize_per_channel(w.detach().float(), scale, torch.zeros_like(scale, dtype=torch.long), 0,
                                      torch.qint8)


def _has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _is_torchao_int8(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) and type(module.weight).__name__ == "Int8Tensor"
