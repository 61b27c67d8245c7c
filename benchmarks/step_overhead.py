"""Where a training step's time goes: nanoGPT's plain PyTorch loop against our path at nanoGPT's CPU shape
(4 layers, 4 heads, 128 dims, block 64, batch 12, fp32, vocab 4096), from a bare Trainer to the full
`llm-train` Trainer (every callback, the CSV logger logging every step, the progress bar).

    python -m benchmarks.step_overhead [--steps 80] [--repeats 3]

The host's speed drifts by 10-20% over minutes, more than the differences sought, so each row is measured *paired*:
after every step of ours, one step of the plain loop runs in the same process (a callback), and the row's figure is
the ratio of the two sums; drift slows both sides alike. Rows run in fresh processes, `--repeats` times each in a
shuffled order; the median ratio is printed. Then one profiled run of the full Trainer (Lightning's
`SimpleProfiler`) states each callback's cost per step and per run, and the last table the cost per firing of the
callbacks that work only now and then (checkpoints, samples, inspection views).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_module
from torch.utils.data import DataLoader

from benchmarks.common import random_shard
from benchmarks.train_speed import VOCAB, PlainLoop
from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.data.tokenizer import train_bpe
from lightning_llm.training.module import CausalLMModule

SHAPE = (4, 4, 128, 64, 12)  # layers, heads, dims, block, batch
WARMUP = 5
GPT2 = {"n_layer": 4, "n_head": 4, "n_embd": 128, "n_positions": 64, "activation_function": "gelu_pytorch_tanh",
        "tie_word_embeddings": True, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
# SwiGLU's three matrices at 344 hold GPT-2's two at 512: the same FLOPs per token
LLAMA = {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 64}
# hooks Lightning calls once per optimizer step (without accumulation); the others run once per fit
PER_STEP_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
                  "on_before_optimizer_step", "on_before_zero_grad")


class Paired(L.Callback):
    """After each of our steps, one step of the plain loop: `ours` is the time from the end of one plain step to
    the end of our next step (everything Lightning and the callbacks do in between), `plain` the plain step's."""

    def __init__(self, steps: int):
        self.plain = PlainLoop(SHAPE, steps)
        self.ours: list[float] = []
        self.plain_times: list[float] = []
        self.mark: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        counted = trainer.global_step > WARMUP
        if counted and self.mark is not None:
            self.ours.append(now - self.mark)
        seconds = self.plain.step()
        if counted and self.mark is not None:
            self.plain_times.append(seconds)
        self.mark = time.perf_counter()


def module(arch: str = "gpt2", optim: dict | None = None) -> CausalLMModule:
    return CausalLMModule(VOCAB, arch=arch, config=GPT2 if arch == "gpt2" else LLAMA,
                          optim={"lr": 1e-3, "warmup_steps": 1, **(optim or {})})


def loader(steps: int) -> DataLoader:
    dataset = PackedDataset([random_shard(VOCAB, SHAPE[3], steps * SHAPE[4])],
                            torch.ones(VOCAB, dtype=torch.uint8).numpy())
    return DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), SHAPE[4]))


def bare_trainer(steps: int, callbacks: list) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", precision="32-true", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     gradient_clip_val=1.0, limit_val_batches=0, callbacks=callbacks,
                     default_root_dir=tempfile.mkdtemp(prefix="llm-overhead-"))


def full_trainer(steps: int, extra: list, overrides: tuple[str, ...] = ()) -> L.Trainer:
    """The Trainer `llm-train` builds (its callbacks, the CSV logger, the progress bar), at this benchmark's shape."""
    from lightning_llm.cli._run import build_logger, build_trainer
    from lightning_llm.cli.train import pretrain_callbacks

    run_dir = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    with initialize_config_module("conf", version_base=None):
        cfg = compose("train", overrides=["logger=csv", f"paths.output_dir={run_dir}", "trainer.precision=32-true",
                                          f"trainer.max_steps={steps}", "trainer.limit_val_batches=0",
                                          "trainer.accelerator=cpu", *overrides])

    class Data:  # what pretrain_callbacks reads of the datamodule
        tokenizer = _tokenizer()

    return build_trainer(cfg, run_dir, "auto", build_logger(cfg, None), pretrain_callbacks(cfg, Data(), run_dir)
                         + extra)


_TOKENIZER = None


def _tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        texts = ["To be, or not to be, that is the question. " * 20, "ROMEO. But soft, what light? " * 20]
        _TOKENIZER = train_bpe(texts, VOCAB)
    return _TOKENIZER


def paired_row(row: str, steps: int) -> tuple[float, float]:
    """(our ms/step, plain ms/step) of one row, alternating step by step in this process."""
    total = steps + WARMUP + 1
    L.seed_everything(0, verbose=False)
    if row == "hf-loop":  # transformers' GPT-2 in the plain loop: the model's own cost, no Lightning
        ours, theirs = PlainLoop(SHAPE, total, model=module().model), PlainLoop(SHAPE, total)
        pairs = [(ours.step(), theirs.step()) for _ in range(total)][WARMUP + 1:]
        return tuple(sum(col) / len(pairs) * 1e3 for col in zip(*pairs, strict=True))
    paired = Paired(total)
    arch = "llama" if row == "full-llama" else "gpt2"
    trainer = full_trainer(total, [paired]) if row.startswith("full") else bare_trainer(total, [paired])
    trainer.fit(module(arch, {"fused": False} if row == "bare-unfused" else None), train_dataloaders=loader(total))
    return sum(paired.ours) / len(paired.ours) * 1e3, sum(paired.plain_times) / len(paired.plain_times) * 1e3


ROWS = {  # row id: what it measures
    "hf-loop": "transformers' GPT-2 (our model) in the plain loop, no Lightning",
    "bare-unfused": "ours, bare Trainer, AdamW unfused (torch's CPU default)",
    "bare": "ours, bare Trainer (AdamW fused, our default)",
    "full": "ours, full llm-train Trainer (every callback, CSV, progress bar)",
    "full-llama": "ours, full llm-train Trainer, Llama (the default arch), same FLOPs",
}


def callback_costs(steps: int) -> tuple[dict[str, float], dict[str, float], int]:
    """Per callback: ms per step (its per-step hooks, after warmup) and seconds per run (its other hooks), from
    Lightning's SimpleProfiler around the full Trainer; plus the logger connector's per-step work."""
    from lightning.pytorch.profilers import SimpleProfiler

    total = steps + WARMUP
    trainer = full_trainer(total, [], ("+trainer.profiler=simple",))
    assert isinstance(trainer.profiler, SimpleProfiler)
    logging = _time_logging(trainer)
    trainer.fit(module(), train_dataloaders=loader(total))
    per_step: dict[str, float] = defaultdict(float)
    per_run: dict[str, float] = defaultdict(float)
    for action, durations in trainer.profiler.recorded_durations.items():
        if not action.startswith(("[Callback]", "[LightningModule]")):
            continue
        owner, hook = action.split("]", 1)[1].rsplit(".", 1)
        owner = owner.split("{", 1)[0]  # ModelCheckpoint's state key carries its arguments
        if action.startswith("[LightningModule]"):
            owner = "self.log in the module's hooks" if hook == "on_before_optimizer_step" else None
        if owner is None:
            continue
        if hook in PER_STEP_HOOKS and len(durations) >= total:
            per_step[owner] += statistics.fmean(durations[WARMUP:]) * 1e3
        else:
            per_run[owner] += sum(durations)
    per_step["Lightning's logger connector: metrics to the CSV logger"] = statistics.fmean(logging[WARMUP:]) * 1e3
    return per_step, per_run, steps


def _time_logging(trainer: L.Trainer) -> list[float]:
    """Times the logger connector's per-step update (Lightning internals: a benchmark may read them)."""
    connector, times = trainer._logger_connector, []
    update = connector.update_train_step_metrics

    def timed() -> None:
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)

    connector.update_train_step_metrics = timed
    return times


def per_firing() -> list[tuple[str, float]]:
    """Seconds each now-and-then callback takes when it fires, at this shape."""
    from lightning_llm.evaluation.inspect import inspect_text
    from lightning_llm.inference import generate

    model, tokenizer, out = module(), _tokenizer(), []
    trainer = bare_trainer(1, [])
    trainer.fit(model, train_dataloaders=loader(2))
    path = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    start = time.perf_counter()
    trainer.save_checkpoint(path / "c.ckpt")
    out.append(("checkpoint save (ModelCheckpoint)", time.perf_counter() - start))
    start = time.perf_counter()
    generate(model.model, tokenizer, ["To be, or not to be", "ROMEO."], max_new_tokens=48, temperature=0.8,
             top_k=50, seed=0)
    out.append(("text samples, 2 prompts x 48 tokens (TextSamples)", time.perf_counter() - start))
    start = time.perf_counter()
    inspect_text(model.model.eval(), tokenizer, "ROMEO.\nBut soft, what light through yonder window breaks?",
                 path / "inspect", title="step", layers=[model.model.config.num_hidden_layers - 1])
    out.append(("surprisal, attention, logit lens (InspectViews)", time.perf_counter() - start))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {','.join(ROWS)}")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: measure one row in this process
    args = parser.parse_args()
    if args.row == "profile":  # in its own process too: the progress bar draws on this process's terminal
        print("profile " + json.dumps(callback_costs(args.steps)))
        return
    if args.row is not None:
        ours, plain = paired_row(args.row, args.steps)
        print(f"paired {ours:.3f} {plain:.3f}")
        return
    rows = args.rows.split(",")
    results: dict[str, list[tuple[float, float]]] = {row: [] for row in rows}
    rng = random.Random(0)
    for _ in range(args.repeats):
        for row in rng.sample(rows, len(rows)):
            out = subprocess.run([sys.executable, "-m", "benchmarks.step_overhead", "--row", row, "--steps",
                                  str(args.steps)], capture_output=True, text=True, check=True).stdout
            ours, plain = map(float, out.rsplit("paired ", 1)[1].split()[:2])
            results[row].append((ours, plain))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; shape 4L/4H/128d, block 64, batch 12, "
          f"fp32; {args.steps} steps each, paired with the plain loop step by step; median of {args.repeats}")
    print(f"{'path':<68}{'ms/step':>9}{'plain':>8}{'vs plain':>10}  (each run)")
    for row in rows:
        ratios = [plain / ours for ours, plain in results[row]]
        print(f"{ROWS[row]:<68}{statistics.median(o for o, _ in results[row]):>9.1f}"
              f"{statistics.median(p for _, p in results[row]):>8.1f}{statistics.median(ratios):>9.2f}x  "
              + " ".join(f"{r:.2f}" for r in ratios))

    out = subprocess.run([sys.executable, "-m", "benchmarks.step_overhead", "--row", "profile", "--steps",
                          str(args.steps)], capture_output=True, text=True, check=True).stdout
    per_step, per_run, steps = json.loads(out.rsplit("profile ", 1)[1])
    print(f"\nfull llm-train Trainer, one profiled run of {steps} steps (Lightning's SimpleProfiler)")
    print(f"{'callback / part':<58}{'ms/step':>9}{'s/run':>8}")
    for owner in sorted(set(per_step) | set(per_run), key=lambda o: -per_step.get(o, 0.0)):
        print(f"{owner:<58}{per_step.get(owner, 0.0):>9.2f}{per_run.get(owner, 0.0):>8.2f}")
    print(f"{'all of them':<58}{sum(per_step.values()):>9.2f}{sum(per_run.values()):>8.2f}")
    print(f"\n{'callback, when it fires':<58}{'seconds':>9}")
    for name, seconds in per_firing():
        print(f"{name:<58}{seconds:>9.2f}")


if __name__ == "__main__":
    main()
