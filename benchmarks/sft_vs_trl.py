"""Fine-tuning speed and memory beside TRL: our SFT path (SFTDataModule + SFTModule + a Lightning Trainer)
and TRL's `SFTTrainer` on the same real base, data, packing, batch, sequence length, precision and LoRA.

    pip install trl==1.16.0          # the side we compare with (not a dependency of lightning_llm)
    python -m benchmarks.sft_vs_trl                      # LoRA and full fine-tuning, fp32 and (native) bf16
    python -m benchmarks.sft_vs_trl --quick              # fewer steps

The same for both sides:
- the built-in base `smollm2-135m-instruct`, and the built-in `plays-qa` examples (the same first N), each a
  user turn and the answer, rendered by the base's own chat template (ChatML);
- packing: several examples per sequence of 256 tokens, each attending only to itself (ours: packed rows with
  per-example position ids; TRL: `packing=True`, its best-fit "bfd" strategy, padding-free);
- loss on the answer tokens only (ours: the default; TRL: prompt-completion data, `completion_only_loss`);
- batch 8 sequences, AdamW at the same lr and schedule, no gradient checkpointing (TRL's SFTConfig turns it on
  by default: off here, as ours is off by default), no dataloader workers;
- LoRA r=16, alpha 32, dropout 0, every linear layer (peft on both sides), or full fine-tuning;
- fp32, or bf16 autocast with fp32 weights (ours: `bf16-mixed`; TRL: `bf16=True`).

Each run is a fresh process (its peak RSS is its own). Tokens/s counts example tokens (not a row's padding)
over the timed steps after the warm-up; the loss is the mean of the last timed steps' losses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BASE = "smollm2-135m-instruct"
SEQ, BATCH, LR = 256, 8, 2e-4
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def _data(n: int) -> dict:
    return {"source": "plays-qa", "format": "squad", "seq_len": SEQ, "batch_size": BATCH,
            "max_examples": {"train": n, "validation": 8, "test": 8}}


def _examples(n: int) -> list[list[dict]]:
    """The very train examples our data module draws for `_data(n)` (seed 0), as chat messages."""
    from lightning_llm.tasks.config import SFTDataConfig
    from lightning_llm.tasks.sft_data import read_splits

    return [e.messages for e in read_splits(SFTDataConfig(**_data(n)), seed=0)["train"]]


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def ours(lora: bool, bf16: bool, steps: int, warmup: int, n_examples: int) -> dict:
    import lightning as L
    import numpy as np
    import torch

    from lightning_llm.data.config import IGNORE
    from lightning_llm.models.pretrained import resolve_model
    from lightning_llm.tasks.sft_data import SFTDataModule
    from lightning_llm.tasks.sft_module import SFTModule

    base = resolve_model(BASE)
    dm = SFTDataModule(_data(n_examples), base, seed=0)
    dm.setup()
    torch.manual_seed(0)
    module = SFTModule(str(base), {"lr": LR, "warmup_steps": warmup, "weight_decay": 0.0},
                       LORA if lora else {"r": 0})

    class Timer(L.Callback):
        def __init__(self):
            self.t0, self.t1, self.tokens, self.losses = 0.0, 0.0, 0, []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warmup:
                self.t0 = time.perf_counter()
            if trainer.global_step >= warmup:
                self.tokens += _example_tokens(batch["position_ids"].numpy(), batch["labels"].numpy())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step > warmup:
                self.t1 = time.perf_counter()
                self.losses.append(float(outputs["loss"]))

    def _example_tokens(pos: np.ndarray, labels: np.ndarray) -> int:
        total = 0
        for p, lab in zip(pos, labels, strict=True):
            last = np.flatnonzero(p == 0)[-1]
            total += last if (lab[last:] == IGNORE).all() else len(p)  # a row's padding is its unlabelled tail
        return int(total)

    timer = Timer()
    trainer = L.Trainer(max_steps=warmup + steps, accelerator="cpu", precision="bf16-mixed" if bf16 else "32-true",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
                        use_distributed_sampler=False, gradient_clip_val=1.0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return {"tokens_per_s": timer.tokens / (timer.t1 - timer.t0), "loss": float(np.mean(timer.losses[-3:])),
            "peak_rss_gb": _peak_rss_gb()}


def trl(lora: bool, bf16: bool, steps: int, warmup: int, n_examples: int) -> dict:
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from lightning_llm.models.pretrained import resolve_model

    base = resolve_model(BASE)
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in _examples(n_examples)])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa")
    tokens = {"n": 0, "on": False}

    def count(module, args, kwargs):
        if tokens["on"] and module.training:
            ids = kwargs.get("input_ids")
            mask = kwargs.get("attention_mask")
            tokens["n"] += int(mask.sum()) if mask is not None else ids.numel()
    model.register_forward_pre_hook(count, with_kwargs=True)

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0, self.t1 = 0.0, 0.0

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warmup:
                self.t0, tokens["on"] = time.perf_counter(), True

        def on_step_end(self, args, state, control, **kw):
            if state.global_step > warmup:
                self.t1 = time.perf_counter()

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                 target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=os.environ.get("TMPDIR", "/tmp") + "/trl-bench", max_steps=warmup + steps,
                     per_device_train_batch_size=BATCH, learning_rate=LR, lr_scheduler_type="cosine",
                     warmup_steps=warmup, weight_decay=0.0, max_grad_norm=1.0, max_length=SEQ, packing=True,
                     gradient_checkpointing=False, bf16=bf16, use_cpu=True, logging_steps=1, report_to="none",
                     save_strategy="no", dataloader_num_workers=0, seed=0, disable_tqdm=True)
    timer = Timer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, peft_config=peft_config, callbacks=[timer],
                         processing_class=AutoTokenizer.from_pretrained(base))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens_per_s": tokens["n"] / (timer.t1 - timer.t0), "loss": float(np.mean(losses[-3:])),
            "peak_rss_gb": _peak_rss_gb()}


def _child(side: str, lora: bool, bf16: bool, steps: int, warmup: int, n: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.sft_vs_trl", "--child", side, "--steps", str(steps),
           "--warmup", str(warmup), "--examples", str(n)] + (["--lora"] if lora else []) + (["--bf16"] if bf16 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--examples", type=int, default=600)
    p.add_argument("--child", choices=["ours", "trl"])
    p.add_argument("--lora", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--only", choices=["lora", "full"], default=None)
    a = p.parse_args()
    if a.child:
        fn = ours if a.child == "ours" else trl
        print(json.dumps(fn(a.lora, a.bf16, a.steps, a.warmup, a.examples)))
        return
    if a.quick:
        a.steps, a.warmup = 3, 1
    import torch

    from lightning_llm.training.precision import host_description, native_bf16

    cpu = torch.device("cpu")
    precisions = [False] + ([True] if native_bf16(cpu) else [])
    modes = [m for m in (True, False) if a.only is None or (a.only == "lora") == m]
    print(f"host: {host_description(cpu)}; base {BASE}, plays-qa, seq {SEQ}, batch {BATCH}, {a.steps} timed steps "
          f"after {a.warmup}\n")
    print("| fine-tuning | precision | ours tokens/s | TRL tokens/s | ratio | ours peak RSS | TRL peak RSS | "
          "ours loss | TRL loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for lora in modes:
        for bf16 in precisions:
            o = _child("ours", lora, bf16, a.steps, a.warmup, a.examples)
            t = _child("trl", lora, bf16, a.steps, a.warmup, a.examples)
            ratio = o["tokens_per_s"] / t["tokens_per_s"]
            print(f"| {'LoRA r=16' if lora else 'full'} | {'bf16-mixed' if bf16 else 'fp32'} | "
                  f"{o['tokens_per_s']:,.0f} | {t['tokens_per_s']:,.0f} | **{ratio:.2f}** | "
                  f"{o['peak_rss_gb']:.2f} GB | {t['peak_rss_gb']:.2f} GB | {o['loss']:.3f} | {t['loss']:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
