"""GPU throughput of a ~1.1B-parameter Llama (TinyLlama's shape) through our full Lightning path, bf16:
eager vs torch.compile, single device vs FSDP2. Never run in CI; one short command on a GPU machine:

    python -m benchmarks.gpu_llama_1b              # ~5-8 minutes on one H100/H200
    python -m benchmarks.gpu_llama_1b --smoke      # a 2-layer model on CPU: checks the script itself

Prints ms/step, tokens/s, MFU (model FLOPs per token x tokens/s / the device's dense bf16 peak) and peak
memory per configuration.
"""

from __future__ import annotations

import argparse

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.common import StepTimer, random_shard
from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.models.flops import flops_per_token, peak_flops
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.parallel import fsdp2_strategy

LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
            "num_key_value_heads": 4, "max_position_embeddings": 2048, "tie_word_embeddings": False}
SMOKE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 64}
# name: (precision, torch.compile, strategy)
CONFIGS = {
    "bf16-mixed, eager": ("bf16-mixed", False, "auto"),
    "bf16-mixed, compile": ("bf16-mixed", True, "auto"),
    "bf16-true, compile": ("bf16-true", True, "auto"),
    "bf16-true, compile, FSDP2 (1 GPU)": ("bf16-true", True, "fsdp2"),
}


def run(config: dict, vocab: int, seq: int, batch: int, steps: int, warmup: int, precision: str, compile: bool,
        strategy: str, accelerator: str) -> dict:
    L.seed_everything(0, verbose=False)
    dataset = PackedDataset([random_shard(vocab, seq, (steps + warmup) * batch)], np.ones(vocab, dtype=np.uint8))
    loader = DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), batch), num_workers=2)
    fused = accelerator == "gpu" or None
    module = CausalLMModule(vocab, "llama", {**config, "max_position_embeddings": seq}, compile=compile,
                            optim={"lr": 3e-4, "warmup_steps": 1, "fused": fused})
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator=accelerator, devices=1, max_steps=steps + warmup, precision=precision,
                        strategy=fsdp2_strategy(1) if strategy == "fsdp2" else strategy, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[timer], use_distributed_sampler=False)
    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, train_dataloaders=loader)
    sec = timer.seconds_per_step
    tokens_per_s = batch * seq / sec
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    peak = peak_flops(device, torch.bfloat16 if accelerator == "gpu" else torch.float32)
    return {"ms": sec * 1e3, "tokens_per_s": tokens_per_s, "params": module.model.num_parameters(),
            "mfu": tokens_per_s * flops_per_token(module.model, seq) / peak if peak else float("nan"),
            "mem_gb": torch.cuda.max_memory_allocated() / 1e9 if accelerator == "gpu" else float("nan")}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny model, CPU, fp32: check the script runs")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args(argv)
    if args.smoke:
        configs = {"fp32, eager (smoke)": ("32-true", False, "auto")}
        config, vocab, seq, batch, steps, warmup, accelerator = SMOKE, 512, 64, 4, 3, 1, "cpu"
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no GPU: run with --smoke to check the script on CPU")
        torch.backends.cuda.matmul.allow_tf32 = True
        configs, config, vocab = CONFIGS, LLAMA_1B, 32000
        seq, batch, steps, warmup, accelerator = args.seq, args.batch, args.steps, args.warmup, "gpu"
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows = []
    print(f"{'configuration':<36}{'params':>8}{'ms/step':>10}{'tokens/s':>12}{'MFU':>8}{'peak GB':>9}", flush=True)
    for name, (precision, compile, strategy) in configs.items():
        r = run(config, vocab, seq, batch, steps, warmup, precision, compile, strategy, accelerator)
        rows.append({"configuration": name, **r})
        print(f"{name:<36}{r['params'] / 1e9:>7.2f}B{r['ms']:>10.1f}{r['tokens_per_s']:>12,.0f}"
              f"{r['mfu']:>8.1%}{r['mem_gb']:>9.1f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
