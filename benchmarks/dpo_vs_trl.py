"""Preference alignment speed and memory beside TRL: our DPO (PreferenceDataModule + DPOModule + a Lightning
Trainer) and TRL's `DPOTrainer` on the same real base, pairs, maximum length, batch, precision and LoRA.

    pip install trl==1.16.0          # the side we compare with (not a dependency of lightning_llm)
    python -m benchmarks.dpo_vs_trl                        # LoRA r=16 and full fine-tuning, fp32 and (native) bf16
    python -m benchmarks.dpo_vs_trl --only lora --precision fp32 --quick

The same for both sides:
- the built-in base `smollm2-135m-instruct` and the first N pairs of the built-in `plays-prefs` (prompt, chosen
  and rejected answers as chat messages), rendered by the base's own chat template (ChatML);
- at most 512 tokens a sequence (no pair is cut at that length), 8 pairs a batch, sigmoid loss with beta 0.1, AdamW at
  the same lr and schedule, no gradient checkpointing (TRL's default turns it on: off here, as ours), no workers;
- LoRA r=16, alpha 32, dropout 0, every linear layer (peft on both sides; the reference is the base with the
  adapters off), or full fine-tuning (a frozen reference copy);
- the reference's log-probs computed live at every step, or precomputed over the training pairs before training
  (ours: `dpo.precompute_reference`; TRL: `precompute_ref_log_probs`);
- fp32, or bf16 autocast with fp32 weights.
Ours runs with packing on and off (TRL 1.16 turns padding-free off for DPO). Each run is a fresh process: its peak
RSS is its own. Pairs/s and tokens/s (the pairs' sequence tokens, no padding) are over the timed steps after the
warm-up, precomputation excluded (its time is a column of its own; TRL's is its trainer's construction, the
tokenization of the pairs included); loss and reward accuracy are the means of the last
three steps' training values.
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
SEQ, BATCH, BETA = 512, 8, 0.1
LR = {"lora": 2e-4, "full": 5e-7}
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def _data(n: int, packed: bool) -> dict:
    return {"source": "plays-prefs", "seq_len": SEQ, "batch_size": BATCH, "pack": packed,
            "max_examples": {"train": n, "validation": 8, "test": 8}}


def _pairs(n: int) -> list:
    """The very train pairs our data module reads for `_data(n)` (seed 0)."""
    from lightning_llm.tasks.config import PreferenceDataConfig
    from lightning_llm.tasks.preference_data import read_pair_splits

    return read_pair_splits(PreferenceDataConfig(**_data(n, True)), seed=0)["train"]


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def ours(lora: bool, bf16: bool, packed: bool, precompute: bool, steps: int, warmup: int) -> dict:
    import lightning as L
    import numpy as np
    import torch

    from lightning_llm.data.config import IGNORE
    from lightning_llm.models.pretrained import resolve_model
    from lightning_llm.tasks.dpo_module import DPOModule
    from lightning_llm.tasks.preference_data import PreferenceDataModule

    base = resolve_model(BASE)
    n = (warmup + steps) * BATCH
    dm = PreferenceDataModule(_data(n, packed), base, seed=0)
    dm.setup()
    torch.manual_seed(0)
    module = DPOModule(str(base), {"loss": "sigmoid", "beta": BETA, "precompute_reference": precompute},
                       {"lr": LR["lora" if lora else "full"], "warmup_steps": warmup, "weight_decay": 0.0},
                       LORA if lora else {"r": 0})
    pre_s = 0.0
    if precompute:
        from lightning_llm.tasks.reference import _compute

        t = time.perf_counter()  # as llm-train does it (fp32, before training), not cached: timed every run
        dm.datasets["train"].reference = _compute(module, dm, "train")
        pre_s = time.perf_counter() - t

    class Timer(L.Callback):
        def __init__(self):
            self.t0, self.t1, self.pairs, self.tokens, self.loss, self.acc = 0.0, 0.0, 0, 0, [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warmup:
                self.t0 = time.perf_counter()
            if trainer.global_step >= warmup:
                self.pairs += int(batch["pair_weight"].sum())
                self.tokens += int(_sequence_tokens(batch))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step > warmup:
                self.t1 = time.perf_counter()
                self.loss.append(float(outputs["loss"]))
                self.acc.append(float(trainer.callback_metrics["train/rewards/accuracy"]))

    def _sequence_tokens(batch) -> int:  # each sequence's prompt and completion, not the rows' padding
        total = 0
        for pos, lab in zip(batch["position_ids"].numpy(), batch["labels"].numpy(), strict=True):
            last = np.flatnonzero(pos == 0)[-1]
            total += last if (lab[last:] == IGNORE).all() else len(pos)
        return total

    timer = Timer()
    trainer = L.Trainer(max_steps=warmup + steps, accelerator="cpu", precision="bf16-mixed" if bf16 else "32-true",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
                        use_distributed_sampler=False, gradient_clip_val=1.0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    dt = timer.t1 - timer.t0
    return {"pairs_per_s": timer.pairs / dt, "tokens_per_s": timer.tokens / dt, "precompute_s": pre_s,
            "loss": float(np.mean(timer.loss[-3:])), "accuracy": float(np.mean(timer.acc[-3:])),
            "peak_rss_gb": _peak_rss_gb()}


def trl(lora: bool, bf16: bool, precompute: bool, steps: int, warmup: int) -> dict:
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from lightning_llm.models.pretrained import resolve_model

    base = resolve_model(BASE)
    n = (warmup + steps) * BATCH
    data = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in _pairs(n)])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa")
    counted = {"pairs": 0, "tokens": 0, "on": False}

    def count(module, args, kwargs):
        if counted["on"] and module.training and torch.is_grad_enabled():  # the policy's forward, not the reference's
            mask = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids")
            counted["tokens"] += int(mask.sum()) if mask is not None else ids.numel()
            counted["pairs"] += ids.shape[0] // 2
    model.register_forward_pre_hook(count, with_kwargs=True)

    class Timer(TrainerCallback):
        def __init__(self):
            self.t0, self.t1, self.pre_end = 0.0, 0.0, 0.0

        def on_train_begin(self, args, state, control, **kw):
            self.pre_end = time.perf_counter()

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warmup:
                self.t0, counted["on"] = time.perf_counter(), True

        def on_step_end(self, args, state, control, **kw):
            if state.global_step > warmup:
                self.t1 = time.perf_counter()

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                 target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    args = DPOConfig(output_dir=os.environ.get("TMPDIR", "/tmp") + "/trl-dpo-bench", max_steps=warmup + steps,
                     per_device_train_batch_size=BATCH, learning_rate=LR["lora" if lora else "full"],
                     lr_scheduler_type="cosine", warmup_steps=warmup, weight_decay=0.0, max_grad_norm=1.0,
                     max_length=SEQ, beta=BETA, loss_type=["sigmoid"], precompute_ref_log_probs=precompute,
                     gradient_checkpointing=False, bf16=bf16, use_cpu=True, logging_steps=1, report_to="none",
                     save_strategy="no", dataloader_num_workers=0, seed=0, disable_tqdm=True)
    timer = Timer()
    start = time.perf_counter()
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, peft_config=peft_config, callbacks=[timer],
                         processing_class=AutoTokenizer.from_pretrained(base))
    built = time.perf_counter()
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    dt = timer.t1 - timer.t0
    return {"pairs_per_s": counted["pairs"] / dt, "tokens_per_s": counted["tokens"] / dt,
            "precompute_s": (built - start) if precompute else 0.0,
            "loss": float(np.mean([h["loss"] for h in logs[-3:]])),
            "accuracy": float(np.mean([h["rewards/accuracies"] for h in logs[-3:]])), "peak_rss_gb": _peak_rss_gb()}


def _child(side: str, lora: bool, bf16: bool, packed: bool, precompute: bool, steps: int, warmup: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.dpo_vs_trl", "--child", side, "--steps", str(steps),
           "--warmup", str(warmup)] + (["--lora"] if lora else []) + (["--bf16"] if bf16 else []) \
        + (["--packed"] if packed else []) + (["--precompute"] if precompute else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 timed steps after 1")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", choices=["lora", "full"], default=None)
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    p.add_argument("--child", choices=["ours", "trl"])
    p.add_argument("--lora", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--packed", action="store_true")
    p.add_argument("--precompute", action="store_true")
    a = p.parse_args()
    if a.child == "ours":
        print(json.dumps(ours(a.lora, a.bf16, a.packed, a.precompute, a.steps, a.warmup)))
        return
    if a.child == "trl":
        print(json.dumps(trl(a.lora, a.bf16, a.precompute, a.steps, a.warmup)))
        return
    if a.quick:
        a.steps, a.warmup = 3, 1
    import torch

    from lightning_llm.training.precision import host_description, native_bf16

    cpu = torch.device("cpu")
    precisions = [b for b in ([False] + ([True] if native_bf16(cpu) else []))
                  if a.precision is None or (a.precision == "bf16") == b]
    modes = [m for m in (True, False) if a.only is None or (a.only == "lora") == m]
    print(f"host: {host_description(cpu)}; base {BASE}, plays-prefs, max length {SEQ}, batch {BATCH} pairs, "
          f"{a.steps} timed steps after {a.warmup}\n")
    print("| fine-tuning | precision | run | packed | precomputed reference | pairs/s | tokens/s | vs TRL (same "
          "reference) | peak RSS | vs TRL | precompute s | loss | reward acc. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for lora in modes:
        for bf16 in precisions:
            for precompute in (False, True):
                t = _child("trl", lora, bf16, False, precompute, a.steps, a.warmup)
                rows = [("TRL DPOTrainer", "no (padding)", t)]
                for packed in (False, True):
                    rows.append(("ours", "yes" if packed else "no (padding)",
                                 _child("ours", lora, bf16, packed, precompute, a.steps, a.warmup)))
                for name, packed, r in rows:
                    print(f"| {'LoRA r=16' if lora else 'full'} | {'bf16-mixed' if bf16 else 'fp32'} | {name} | "
                          f"{packed} | {'yes' if precompute else 'no'} | {r['pairs_per_s']:.2f} | "
                          f"{r['tokens_per_s']:,.0f} | **{r['pairs_per_s'] / t['pairs_per_s']:.2f}x** | "
                          f"{r['peak_rss_gb']:.2f} GB | {r['peak_rss_gb'] / t['peak_rss_gb']:.2f}x | "
                          f"{r['precompute_s']:.0f} | {r['loss']:.4f} | {r['accuracy']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
