"""One optimizer step of the default recipe's model (Llama, 4 layers x 128, SwiGLU 384, vocab 2048): AdamW fused
and unfused (alone, and after gradient clipping as bf16-mixed runs them), Muon with its Newton-Schulz
orthogonalization in bf16 (torch's) and in fp32 (ours where bf16 is emulated), and the orthogonalization alone of
one 384x128 matrix in each dtype, side by side in one process.

    python -m benchmarks.optimizer_step [--repeats 30]

Prints the median ms of each and its ratio to the first row of its table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz  # what Muon runs

from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.muon import _newton_schulz_fp32
from lightning_llm.training.optim import MuonConfig, OptimConfig, build_optimizer
from lightning_llm.training.precision import native_bf16

CONFIG = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
          "num_key_value_heads": 4, "max_position_embeddings": 128}


def median_ms(fn, repeats: int) -> float:
    fn()  # first call: state allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def optimizer_step_ms(optim: dict, repeats: int, clip: float | None = None) -> float:
    """One step; with `clip`, Lightning's clipping first (`clip_grad_norm_`, as its precision plugins call it)."""
    torch.manual_seed(0)
    model = CausalLMModule(2048, config=CONFIG).model
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = build_optimizer(model, OptimConfig(**optim), 1000, clipped_under_amp=clip is not None)["optimizer"]
    if clip is None:
        return median_ms(optimizer.step, repeats)
    params = list(model.parameters())

    def clipped_step():
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    return median_ms(clipped_step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
          f"{native_bf16(torch.device('cpu'))}")
    rows = [("AdamW, fused (our default)", {"name": "adamw"}),
            ("AdamW, unfused (torch's CPU default)", {"name": "adamw", "fused": False}),
            ("Muon + AdamW, Newton-Schulz in fp32", {"name": "muon", "muon": {"ns_dtype": "fp32"}}),
            ("Muon + AdamW, Newton-Schulz in bf16 (torch's)", {"name": "muon", "muon": {"ns_dtype": "bf16"}})]
    print(f"\n{'one optimizer step of the whole model':<50}{'ms':>9}{'ratio':>8}")
    base = None
    for name, optim in rows:
        if "muon" in optim:
            optim = {**optim, "muon": MuonConfig(**optim["muon"])}
        ms = optimizer_step_ms(optim, args.repeats)
        base = base or ms
        print(f"{name:<50}{ms:>9.2f}{ms / base:>7.2f}x")

    # Under bf16-mixed the weights and gradients stay fp32 (autocast runs the matmuls in bf16): the optimizer
    # step is the fp32 one. What differs is clipping: Lightning refuses it for a fused AdamW unless told the
    # optimizer does not unscale inside (training.optim.let_lightning_unscale): we keep fused and clip first.
    print(f"\n{'clip to norm 1.0, then one step (as under bf16)':<50}{'ms':>9}{'ratio':>8}")
    base = None
    for name, optim in [("AdamW, fused (our default)", {"name": "adamw"}),
                        ("AdamW, unfused (fused off where clipping)", {"name": "adamw", "fused": False}),
                        ("AdamW, foreach", {"name": "adamw", "fused": False, "foreach": True})]:
        ms = optimizer_step_ms(optim, args.repeats, clip=1.0)
        base = base or ms
        print(f"{name:<50}{ms:>9.2f}{ms / base:>7.2f}x")

    grad = torch.randn(384, 128)
    coefficients = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
    fp32 = median_ms(lambda: _newton_schulz_fp32(grad, coefficients, 5, 1e-7), args.repeats)
    bf16 = median_ms(lambda: _zeropower_via_newtonschulz(grad, coefficients, 5, 1e-7), args.repeats)
    print(f"\n{'Newton-Schulz, 5 steps, one 384x128 matrix':<50}{'ms':>9}{'ratio':>8}")
    print(f"{'fp32 (ours where bf16 is emulated)':<50}{fp32:>9.2f}{1.0:>7.2f}x")
    print(f"{'bf16 (torch.optim.Muon)':<50}{bf16:>9.2f}{bf16 / fp32:>7.2f}x")


if __name__ == "__main__":
    main()
