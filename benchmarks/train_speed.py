"""Training speed: a plain PyTorch loop over a minimal GPT (nanoGPT's model and loop) against our full
Lightning path (PretrainDataModule's loader, CausalLMModule, Trainer) on the same shape, in one process.

    python benchmarks/train_speed.py            # both shapes, fp32 and bf16-mixed
    python benchmarks/train_speed.py --quick    # the small shape only

Prints ms/step, tokens/s and each row's speed relative to the plain fp32 loop of the same shape.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.common import StepTimer, random_shard
from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.training.module import CausalLMModule

SHAPES = {  # name: (layers, heads, dims, block, batch)
    "nanoGPT CPU (4L/4H/128d, block 64, batch 12)": (4, 4, 128, 64, 12),
    "6L/6H/384d, block 256, batch 8": (6, 6, 384, 256, 8),
}
VOCAB = 4096


class Block(nn.Module):
    def __init__(self, dims: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dims), nn.LayerNorm(dims)
        self.qkv, self.proj = nn.Linear(dims, 3 * dims), nn.Linear(dims, dims)
        self.fc, self.out = nn.Linear(dims, 4 * dims), nn.Linear(4 * dims, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, c // self.heads).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class MiniGPT(nn.Module):
    """nanoGPT's model, reduced to what training needs."""

    def __init__(self, layers: int, heads: int, dims: int, block: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, dims), nn.Embedding(block, dims)
        self.blocks = nn.ModuleList(Block(dims, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dims)
        self.head = nn.Linear(dims, VOCAB, bias=False)
        self.head.weight = self.tok.weight
        for name, p in self.named_parameters():  # nanoGPT's init: N(0, 0.02), residual projections scaled
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                std = 0.02 / (2 * layers) ** 0.5 if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


class PlainLoop:
    """nanoGPT's training step (its model unless `model` is given; AdamW as nanoGPT builds it on CPU: unfused),
    one `step()` at a time, on random tokens."""

    def __init__(self, shape, steps: int, bf16: bool = False, model: nn.Module | None = None, seed: int = 0):
        layers, heads, dims, block, batch = shape
        torch.manual_seed(seed)
        self.model = model if model is not None else MiniGPT(layers, heads, dims, block)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.1)
        self.data = torch.randint(0, VOCAB, (steps, batch, block + 1))
        self.bf16, self.i = bf16, 0

    def step(self) -> float:
        """One optimizer step; returns its seconds."""
        start = time.perf_counter()
        batch = self.data[self.i % len(self.data)]
        self.i += 1
        x, y = batch[:, :-1], batch[:, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x)
        logits = getattr(logits, "logits", logits)  # a transformers model returns an output object
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def plain_loop(shape, steps: int, warmup: int, bf16: bool) -> float:
    """Seconds per step of the plain loop, after `warmup` steps."""
    loop = PlainLoop(shape, steps + warmup, bf16)
    times = [loop.step() for _ in range(steps + warmup)]
    return sum(times[warmup:]) / steps


def lightning_path(shape, steps: int, warmup: int, precision: str, compile: bool = False) -> float:
    layers, heads, dims, block, batch = shape
    L.seed_everything(0, verbose=False)
    dataset = PackedDataset([random_shard(VOCAB, block, (steps + warmup) * batch)],
                            torch.ones(VOCAB, dtype=torch.uint8).numpy())
    loader = DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), batch))
    config = {"n_layer": layers, "n_head": heads, "n_embd": dims, "n_positions": block,
              "activation_function": "gelu_pytorch_tanh", "tie_word_embeddings": True,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}  # nanoGPT trains without dropout
    module = CausalLMModule(VOCAB, arch="gpt2", config=config, optim={"lr": 1e-3, "warmup_steps": 1},
                            compile=compile)
    timer = StepTimer(warmup)
    trainer = L.Trainer(max_steps=steps + warmup, accelerator="cpu", precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer.seconds_per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small shape only")
    parser.add_argument("--compile", action="store_true", help="add rows with model.compile=true (slow to start)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocab {VOCAB}")
    print(f"{'shape':<46}{'path':<30}{'ms/step':>9}{'tokens/s':>11}{'vs plain fp32':>15}")
    for name, shape in list(SHAPES.items())[: 1 if args.quick else None]:
        steps = 30 if shape[3] <= 64 else 8
        rows = [("plain PyTorch loop, fp32", plain_loop(shape, steps, 3, bf16=False)),
                ("plain PyTorch loop, bf16 autocast", plain_loop(shape, steps, 3, bf16=True)),
                ("lightning_llm, 32-true", lightning_path(shape, steps, 3, "32-true")),
                ("lightning_llm, bf16-mixed", lightning_path(shape, steps, 3, "bf16-mixed"))]
        if args.compile:
            rows += [("lightning_llm, 32-true, compile", lightning_path(shape, steps, 5, "32-true", True)),
                     ("lightning_llm, bf16-mixed, compile", lightning_path(shape, steps, 5, "bf16-mixed", True))]
        base = rows[0][1]
        for path, sec in rows:
            tokens = shape[3] * shape[4] / sec
            print(f"{name:<46}{path:<30}{sec * 1e3:>9.1f}{tokens:>11,.0f}{base / sec:>14.2f}x")
    print("\n(lightning_llm runs the transformers GPT2LMHeadModel with gelu_pytorch_tanh and the loss in fp32.)")


if __name__ == "__main__":
    main()
