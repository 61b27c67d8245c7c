"""`llm-train recipe=dpo` end to end on the tiny export: both precisions, LoRA merged into the export and GGUF,
exact resume, two DDP processes, a precomputed reference, the library on a plain `L.Trainer`."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.integration.conftest import llm

WORDS = ["king", "queen", "lord", "lady", "good", "night", "love", "sword", "crown", "fair", "sweet", "noble"]
FAST = ["trainer.max_steps=6", "trainer.val_check_interval=3", "checkpoint.every_n_train_steps=3",
        "optim.warmup_steps=1", "data.seq_len=64", "data.batch_size=4", "logger=csv", "trainer.accelerator=cpu",
        "finetune.forgetting.max_bytes=4000"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """Pairs in all three layouts: explicit prompts, chat messages, Human:/Assistant: transcripts."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("prefs") / "pairs.jsonl"
    with path.open("w") as f:
        for i in range(96):
            p = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
            bad = " ".join(["sword"] * rng.randint(1, 6))
            if i % 3 == 0:
                r = {"prompt": f"Praise {p}", "chosen": f"good {p}", "rejected": bad}
            elif i % 3 == 1:
                q = [{"role": "user", "content": f"Praise {p}"}]
                r = {"chosen": [*q, {"role": "assistant", "content": f"good {p}"}],
                     "rejected": [*q, {"role": "assistant", "content": bad}]}
            else:
                r = {"chosen": f"\n\nHuman: Praise {p}\n\nAssistant: good {p}",
                     "rejected": f"\n\nHuman: Praise {p}\n\nAssistant: {bad}"}
            f.write(json.dumps(r) + "\n")
    return path


def _rows(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "csv" / "metrics.csv").open()))


def _losses(run: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in _rows(run) if r.get("train/loss")}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_dpo_runs_end_to_end_with_lora_merged_into_the_export(precision, pairs, tiny_export, tmp_path):
    run = tmp_path / "run"
    gguf = ["export.gguf=f32"] if precision == "32-true" else []
    proc = llm("train", "recipe=dpo", f"init_from={tiny_export}", *FAST, f"trainer.precision={precision}",
               f"data.data_files.train={pairs}", "lora.r=4", "optim.lr=1e-3", *gguf, f"hydra.run.dir={run}",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["precision"] == precision and m["task"] == "dpo" and m["steps"] == 6
    for split in ("val", "test"):
        assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "logps/chosen",
                "logps/rejected", "preference_accuracy"} <= set(m[split])
    assert set(m["baselines"]) == {"before_finetuning", "trivial (longer completion)"}
    assert m["forgetting"]["bpb_before"] > 0 and m["data"]["train"]["kept"] > 0
    assert "fine-tuned" in proc.stdout and "preference_accuracy" in proc.stdout
    rows = _rows(run)
    assert any(r.get("val/rewards/accuracy") for r in rows) and any(r.get("train/rewards/margin") for r in rows)
    # LoRA merged: a plain transformers model, no adapter files
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "export")
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert not (run / "export" / "adapter_config.json").exists()
    if gguf:
        assert (run / "export-f32.gguf").is_file()


@pytest.mark.slow
def test_dpo_resume_auto_continues_the_same_run(pairs, tiny_export, tmp_path):
    # a constant rate: the run cut at step 6 (max_steps=6) schedules as the whole one (max_steps=9) does
    args = ["recipe=dpo", f"init_from={tiny_export}", *FAST, "trainer.precision=32-true",
            f"data.data_files.train={pairs}", "lora.r=4", "optim.lr=1e-3", "optim.schedule=constant"]
    whole = llm("train", *args, "trainer.max_steps=9", f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = llm("train", *args, f"hydra.run.dir={tmp_path / 'cut'}", cwd=tmp_path)  # stops at step 6
    assert first.returncode == 0, first.stderr[-2000:]
    again = llm("train", *args, "trainer.max_steps=9", "resume=auto", f"hydra.run.dir={tmp_path / 'cut'}",
                cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    whole_losses, cut_losses = _losses(tmp_path / "whole"), _losses(tmp_path / "cut")
    for step in (6, 7, 8):  # the steps after the resume are the uninterrupted run's
        assert cut_losses[step] == pytest.approx(whole_losses[step], rel=1e-5), step


@pytest.mark.slow
def test_dpo_loss_is_the_same_on_two_ddp_processes_and_with_a_precomputed_reference(pairs, tiny_export, tmp_path):
    """Two processes with 2 pairs each train the run one process trains with 4; a reference precomputed before
    training gives the losses the live frozen copy gives (full fine-tuning)."""
    common = ["recipe=dpo", f"init_from={tiny_export}", *FAST, "trainer.precision=32-true",
              f"data.data_files.train={pairs}", "lora.r=0", "optim.lr=1e-3", "trainer.gradient_clip_val=null",
              f"paths.data_dir={tmp_path / 'cache'}"]
    runs = {"one": ["data.batch_size=4"], "ddp": ["data.batch_size=2", "strategy=ddp", "trainer.devices=2"],
            "precomputed": ["data.batch_size=4", "dpo.precompute_reference=true"]}
    for name, extra in runs.items():
        proc = llm("train", *common, *extra, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
    one = _losses(tmp_path / "one")
    assert sorted(one) == list(range(6))
    for name in ("ddp", "precomputed"):
        other = _losses(tmp_path / name)
        for step, value in one.items():
            assert other[step] == pytest.approx(value, rel=1e-4, abs=1e-5), (name, step)


@pytest.mark.slow
def test_the_library_on_a_plain_trainer(pairs, tiny_export, tmp_path):
    import lightning as L

    from lightning_llm.tasks import DPOModule, PreferenceDataModule

    data = PreferenceDataModule({"data_files": {"train": str(pairs)}, "seq_len": 64, "batch_size": 4}, tiny_export)
    module = DPOModule(str(tiny_export), {"loss": "sigmoid", "beta": 0.1}, {"lr": 1e-3, "warmup_steps": 1},
                       {"r": 4, "alpha": 8})
    trainer = L.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, use_distributed_sampler=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    (test,) = trainer.test(module, datamodule=data, verbose=False)
    assert test["test/rewards/accuracy"] > 0.5 and test["test/rewards/margin"] > 0
    from lightning_llm.models.pretrained import load_causal_lm

    merged = module.merged_model()  # what an export writes: the adapters folded into the base's weights
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert merged.num_parameters() == load_causal_lm(tiny_export).num_parameters()
