"""Training that scales and survives: DDP on CPU matches one process; SIGKILL + resume=auto is exact."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.conftest import llm, tiny


def losses(run: Path) -> dict[int, float]:
    """Per-step train/loss from the CSV logger (the last value written for a step wins)."""
    out = {}
    for row in csv.DictReader((run / "csv" / "metrics.csv").open()):
        if row.get("train/loss"):
            out[int(row["step"])] = float(row["train/loss"])
    return out


@pytest.fixture(scope="module")
def single_process_run(corpus_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("one")
    common = [*tiny(corpus_dir, tmp), "logger=csv", "trainer.max_steps=12", "trainer.val_check_interval=6",
              "trainer.precision=32-true"]
    one = llm("train", *common, "data.batch_size=8", f"hydra.run.dir={tmp / 'one'}", cwd=tmp)
    assert one.returncode == 0, one.stderr[-2000:]
    return tmp, common


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_cpu_processes_follow_the_single_process_trajectory(single_process_run, strategy):
    tmp_path, common = single_process_run
    two = llm("train", *common, "data.batch_size=4", f"strategy={strategy}", "trainer.devices=2",
              f"hydra.run.dir={tmp_path / strategy}", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / strategy)
    assert sorted(a) == sorted(b) == list(range(12))
    assert b[0] == pytest.approx(a[0], rel=1e-6)  # same weights, same global batch
    for step in a:  # same global batches, gradients averaged by DDP: the same run within float tolerance
        assert b[step] == pytest.approx(a[step], rel=1e-3), step
    assert not (tmp_path / "outputs").exists()  # the second rank made no run dir of its own
    assert (tmp_path / strategy / "metrics.json").exists() and (tmp_path / strategy / "export").is_dir()


def test_sigkill_then_resume_auto_is_exact(corpus_dir, tmp_path):
    common = [*tiny(corpus_dir, tmp_path), "logger=csv", "data.batch_size=64", "trainer.max_steps=150",
              "trainer.val_check_interval=50", "checkpoint.every_n_train_steps=5", "samples.max_new_tokens=1"]
    straight = llm("train", *common, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", *common, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "step-0000010.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()
    resumed_from = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.ckpt"))
    assert 10 <= resumed_from < 150

    resumed = llm("train", *common, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = losses(tmp_path / "straight"), losses(run)
    after = [s for s in a if s >= resumed_from]
    assert len(after) == 150 - resumed_from
    assert [b[s] for s in after] == [a[s] for s in after]  # bit-identical per-step losses after the kill
    wa, wb = load_file(tmp_path / "straight" / "export" / "model.safetensors"), load_file(run / "export" /
                                                                                          "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    from lightning_llm.training.checkpointing import latest_checkpoint

    torch.save({"global_step": 5}, tmp_path / "step-0000005.ckpt")
    time.sleep(0.01)
    torch.save({"global_step": 10, "pad": torch.zeros(10_000)}, tmp_path / "step-0000010.ckpt")
    data = (tmp_path / "step-0000010.ckpt").read_bytes()
    (tmp_path / "step-0000010.ckpt").write_bytes(data[: len(data) // 2])  # a half-written file
    assert latest_checkpoint(tmp_path) == tmp_path / "step-0000005.ckpt"
    assert "step-0000010.ckpt is unreadable" in caplog.text


def test_resume_continues_the_same_wandb_run(corpus_dir, tmp_path):
    run = tmp_path / "wb"
    common = [*tiny(corpus_dir, tmp_path), "logger=wandb", "samples.max_new_tokens=1", f"hydra.run.dir={run}"]
    first = llm("train", *common, "trainer.max_steps=20", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Tried to log to step" not in first.stderr + first.stdout  # no metric dropped by W&B
    second = llm("train", *common, "trainer.max_steps=30", "resume=auto", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    runs = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and runs[0].rsplit("-", 1)[1] == runs[1].rsplit("-", 1)[1]  # one W&B run id
    assert "wandb sync" in second.stdout
    tables = " ".join(p.name for p in (run / "wandb").rglob("*.table.json"))
    assert "cleaning_steps" in tables and "dropped_by_reason" in tables  # the cleaning report: table, bar chart


@pytest.mark.parametrize("action", ["stop", "skip"])
def test_nonfinite_loss_stops_with_the_step_or_skips_the_step(corpus_dir, tmp_path, action):
    import lightning as L

    from lightning_llm.data import PretrainDataModule
    from lightning_llm.errors import UserError
    from lightning_llm.training.module import CausalLMModule
    from tests.conftest import TINY_MODEL

    dm = PretrainDataModule({"data_files": {"train": f"{corpus_dir}/*.txt"}, "seq_len": 32, "batch_size": 4},
                            {"vocab_size": 300}, tmp_path)
    dm.prepare_data()
    dm.setup()
    model = CausalLMModule(dm.vocab_size, config=TINY_MODEL, optim={"warmup_steps": 1}, on_nonfinite_loss=action)
    real = model.token_nats
    model.token_nats = lambda batch: real(batch) * (float("nan") if model.trainer.global_step == 3 else 1.0)
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, enable_model_summary=False)
    if action == "stop":
        with pytest.raises(UserError, match="training loss is nan at step 3: stopped"):
            trainer.fit(model, dm)
    else:
        trainer.fit(model, dm)
        assert model.skipped_steps == 1 and trainer.global_step == dm.batches_consumed == 6
        assert all(torch.isfinite(p).all() for p in model.parameters())
