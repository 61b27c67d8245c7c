"""Where a training step's time goes: nanoGPT's plain PyTorch loop against our path at nanoGPT's CPU shape
(4 layers, 4 heads, 128 dims, block 64, batch 12, fp32, vocab 4096), from a bare Trainer to the full
`llm-train` Trainer (every callback, the CSV logger logging every step, the progress bar), one process.

    python -m benchmarks.step_overhead [--steps 40] [--repeats 3]

Each row runs in a fresh process, `--repeats` times in a shuffled order, and reports the median ms/step.
"+ X" rows are the bare Trainer with one callback added: their difference to the bare row is that callback's cost
per step. The last table is the cost of the callbacks that work only now and then (checkpoints, samples,
inspection views), per firing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from benchmarks.common import StepTimer, random_shard
from benchmarks.train_speed import VOCAB, plain_loop
from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.data.tokenizer import train_bpe
from lightning_llm.training.callbacks import InspectViews, LossCurves, StepProgressBar, TextSamples, ThroughputMFU
from lightning_llm.training.checkpointing import RunIdInCheckpoint
from lightning_llm.training.module import CausalLMModule

SHAPE = (4, 4, 128, 64, 12)  # layers, heads, dims, block, batch
GPT2 = {"n_layer": 4, "n_head": 4, "n_embd": 128, "n_positions": 64, "activation_function": "gelu_pytorch_tanh",
        "tie_word_embeddings": True, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
LLAMA = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 64}


def ours(steps: int, warmup: int, callbacks=(), logger=False, arch: str = "gpt2", optim: dict | None = None,
         progress: bool = False, full: bool = False) -> float:
    """ms/step of our module under a Trainer with these callbacks (full: the Trainer llm-train builds)."""
    block, batch = SHAPE[3], SHAPE[4]
    L.seed_everything(0, verbose=False)
    dataset = PackedDataset([random_shard(VOCAB, block, (steps + warmup) * batch)],
                            torch.ones(VOCAB, dtype=torch.uint8).numpy())
    loader = DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), batch))
    module = CausalLMModule(VOCAB, arch=arch, config=GPT2 if arch == "gpt2" else LLAMA,
                            optim={"lr": 1e-3, "warmup_steps": 1, **(optim or {})})
    timer = StepTimer(warmup)
    run_dir = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    if full:
        trainer = _full_trainer(run_dir, steps + warmup, [timer])
    else:
        trainer = L.Trainer(max_steps=steps + warmup, accelerator="cpu", precision="32-true", logger=logger,
                            enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                            enable_progress_bar=progress, enable_model_summary=False,
                            gradient_clip_val=1.0, limit_val_batches=0, log_every_n_steps=1,
                            callbacks=[timer, *callbacks], default_root_dir=run_dir)
    trainer.fit(module, train_dataloaders=loader)
    return timer.seconds_per_step * 1e3


def _full_trainer(run_dir: Path, max_steps: int, extra: list) -> L.Trainer:
    """The Trainer `llm-train` builds (callbacks, CSV logger, progress bar), at this benchmark's shape."""
    from lightning_llm.cli._run import build_logger, build_trainer
    from lightning_llm.cli.train import pretrain_callbacks

    with initialize_config_module("conf", version_base=None):
        cfg = compose("train", overrides=["logger=csv", f"paths.output_dir={run_dir}", "trainer.precision=32-true",
                                          f"trainer.max_steps={max_steps}", "trainer.limit_val_batches=0",
                                          "trainer.accelerator=cpu"])
    tokenizer = _tokenizer()

    class Data:  # what pretrain_callbacks reads of the datamodule
        pass

    data = Data()
    data.tokenizer = tokenizer
    logger = build_logger(cfg, None)
    return build_trainer(cfg, run_dir, "auto", logger, pretrain_callbacks(cfg, data, run_dir) + extra)


_TOKENIZER = None


def _tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        texts = ["To be, or not to be, that is the question. " * 20, "ROMEO. But soft, what light? " * 20]
        _TOKENIZER = train_bpe(texts, VOCAB)
    return _TOKENIZER


def per_firing(arch: str = "gpt2") -> list[tuple[str, float]]:
    """Seconds each now-and-then callback takes when it fires, at this shape."""
    module = CausalLMModule(VOCAB, arch=arch, config=GPT2 if arch == "gpt2" else LLAMA)
    tokenizer = _tokenizer()
    out = []
    run_dir = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=run_dir, limit_val_batches=0)
    dataset = PackedDataset([random_shard(VOCAB, SHAPE[3], 64)], torch.ones(VOCAB, dtype=torch.uint8).numpy())
    trainer.fit(module, train_dataloaders=DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), 12)))
    start = time.perf_counter()
    trainer.save_checkpoint(run_dir / "c.ckpt")
    out.append(("checkpoint save (ModelCheckpoint)", time.perf_counter() - start))
    from lightning_llm.evaluation.inspect import inspect_text
    from lightning_llm.inference import generate

    start = time.perf_counter()
    generate(module.model, tokenizer, ["To be, or not to be", "ROMEO."], max_new_tokens=48, temperature=0.8,
             top_k=50, seed=0)
    out.append(("text samples, 2 prompts x 48 tokens (TextSamples)", time.perf_counter() - start))
    start = time.perf_counter()
    inspect_text(module.model.eval(), tokenizer, "ROMEO.\nBut soft, what light through yonder window breaks?",
                 run_dir / "inspect", title="step", layers=[module.model.config.num_hidden_layers - 1])
    out.append(("surprisal, attention, logit lens (InspectViews)", time.perf_counter() - start))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row in this process
    args = parser.parse_args()
    steps, warmup = args.steps, 5
    tokenizer = _tokenizer()
    log_dir = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    rows = {
        "plain PyTorch loop (nanoGPT's model, AdamW, clipping)": lambda: plain_loop(SHAPE, steps, warmup, False) * 1e3,
        "ours, bare Trainer, AdamW unfused (torch's CPU default)": lambda: ours(steps, warmup, optim={"fused": False}),
        "ours, bare Trainer": lambda: ours(steps, warmup),
        "  + ModelCheckpoint (every 500 steps)": lambda: ours(steps, warmup, [ModelCheckpoint(
            dirpath=log_dir / "ckpt", every_n_train_steps=500, save_last=True, monitor="step", mode="max")]),
        "  + RunIdInCheckpoint": lambda: ours(steps, warmup, [RunIdInCheckpoint()]),
        "  + LossCurves": lambda: ours(steps, warmup, [LossCurves(log_dir / "curves.png")]),
        "  + ThroughputMFU (every 10 steps)": lambda: ours(steps, warmup, [ThroughputMFU(10)]),
        "  + TextSamples (every 500 steps)": lambda: ours(steps, warmup, [TextSamples(
            tokenizer, ["ROMEO."], 500, 48, 0.8, 50, 0)]),
        "  + InspectViews (off, the default)": lambda: ours(steps, warmup, [InspectViews(
            tokenizer, "ROMEO.", 0, log_dir / "inspect")]),
        "  + CSV logger, every step": lambda: ours(steps, warmup, logger=CSVLogger(log_dir)),
        "  + LearningRateMonitor (with the CSV logger)": lambda: ours(
            steps, warmup, [LearningRateMonitor(logging_interval="step")], logger=CSVLogger(log_dir)),
        "  + progress bar (rich)": lambda: ours(steps, warmup, [StepProgressBar()], progress=True),
        "ours, full llm-train Trainer (all of the above)": lambda: ours(steps, warmup, full=True),
        "ours, full llm-train Trainer, Llama (the default arch)": lambda: ours(steps, warmup, full=True, arch="llama"),
    }
    if args.row is not None:  # one measurement, in this fresh process
        print(f"ms/step {rows[args.row]():.3f}")
        return
    # every measurement in a fresh process, rows in a new random order each repeat: measured in one process, the
    # later Trainers of a run were slower (positional drift of ~10-20 ms), whatever they held
    times: dict[str, list[float]] = {name: [] for name in rows}
    rng = random.Random(0)
    for _ in range(args.repeats):
        order = list(rows)
        rng.shuffle(order)
        for name in order:
            out = subprocess.run([sys.executable, "-m", "benchmarks.step_overhead", "--row", name, "--steps",
                                  str(steps)], capture_output=True, text=True, check=True).stdout
            times[name].append(float(out.rsplit("ms/step ", 1)[1].split()[0]))
    base = statistics.median(times[next(iter(rows))])
    bare = statistics.median(times["ours, bare Trainer"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; shape 4L/4H/128d, block 64, batch 12, "
          f"fp32; median of {args.repeats} x {steps} steps")
    print(f"{'path':<58}{'ms/step':>9}{'vs plain':>10}{'vs bare':>10}")
    for name in rows:
        ms = statistics.median(times[name])
        print(f"{name:<58}{ms:>9.1f}{base / ms:>9.2f}x{ms - bare:>+9.1f}ms")
    print(f"\n{'callback, when it fires':<58}{'seconds':>9}")
    for name, seconds in per_firing():
        print(f"{name:<58}{seconds:>9.2f}")


if __name__ == "__main__":
    main()
