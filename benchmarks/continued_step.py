"""Continued pretraining of the built-in base (SmolLM2-135M): one whole training step (forward, backward, optimizer)
with the optimizer a real base now gets (AdamW, `continued.*`) beside the default recipe's (Muon for the hidden
matrices, AdamW for the rest), at the default recipe's batch (16 x 128) and a small one (4 x 128), side by side in one
process, in fp32 and (where the CPU has native bf16) under bf16 autocast.

    python -m benchmarks.continued_step [--repeats 3]

Prints the median seconds of each step and Muon's time over AdamW's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lightning_llm.models.pretrained import load_causal_lm
from lightning_llm.training.optim import MuonConfig, OptimConfig, build_optimizer
from lightning_llm.training.precision import host_description, native_bf16

BASE = "smollm2-135m-instruct"


def step_seconds(model, optim: OptimConfig, batch: tuple[int, int], bf16: bool, repeats: int) -> float:
    opt = build_optimizer(model, optim, total_steps=100)["optimizer"]
    ids = torch.randint(0, model.config.vocab_size, batch)
    times = []
    for _ in range(repeats + 1):  # the first: optimizer state allocation
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    cpu = torch.device("cpu")
    print(f"host: {host_description(cpu)}; {BASE}, {a.repeats} timed steps after one\n")
    print("| batch | precision | AdamW (continued.lr) s/step | Muon + AdamW (default recipe) s/step | Muon / AdamW |")
    print("|---|---|---|---|---|")
    adamw = OptimConfig(name="adamw", lr=5e-5, warmup_steps=0)
    muon = OptimConfig(name="muon", lr=3e-3, warmup_steps=0, muon=MuonConfig())
    for batch in ((16, 128), (4, 128)):
        for bf16 in [False] + ([True] if native_bf16(cpu) else []):
            torch.manual_seed(0)
            times = [step_seconds(load_causal_lm(BASE), o, batch, bf16, a.repeats) for o in (adamw, muon)]
            print(f"| {batch[0]} x {batch[1]} | {'bf16-mixed' if bf16 else 'fp32'} | {times[0]:.2f} | {times[1]:.2f} | "
                  f"**{times[1] / times[0]:.1f}x** |", flush=True)


if __name__ == "__main__":
    main()
