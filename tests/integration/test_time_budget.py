"""A run bounded by `trainer.max_time`: its learning rate reaches the floor when the budget ends, and a SIGKILLed
run resumed with resume=auto ends at the same budget (the elapsed training time travels in checkpoints)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import llm, tiny

pytestmark = pytest.mark.slow

BUDGET = 30.0


def test_a_sigkilled_and_resumed_30_second_run_ends_at_its_budget_with_the_lr_at_its_floor(corpus_dir, tmp_path):
    common = [*tiny(corpus_dir, tmp_path), "logger=csv", "++trainer.max_time=00:00:00:30", "trainer.max_steps=1000000",
              "trainer.val_check_interval=10", "trainer.limit_val_batches=2", "checkpoint.every_n_train_steps=20",
              "samples.every_n_steps=0", "samples.max_new_tokens=1", "optim.warmup_steps=10"]
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", *common, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (run / "checkpoints" / "step-0000040.ckpt").exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, "no checkpoint at step 40 in time"
        time.sleep(0.05)
    time.sleep(2)  # trained on past the checkpoint: that time is lost, not counted twice
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "metrics.json").exists()

    resumed = llm("train", *common, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["time_budget_s"] == BUDGET
    assert BUDGET <= metrics["train_time_s"] < BUDGET + 3  # the budget, not the budget plus the first run's part
    lr_of = {}  # the last value logged for a step wins: the resumed run logs again the steps after its checkpoint
    for r in csv.DictReader((run / "csv" / "metrics.csv").open()):
        if r.get("lr-AdamW/pg1"):
            lr_of[int(r["step"])] = float(r["lr-AdamW/pg1"])
    assert sorted(lr_of) == list(range(metrics["steps"]))  # every step of both parts in the one log
    lrs = sorted(lr_of.items())
    peak, floor = 3e-3, 3e-3 * 0.1
    assert max(lr for _, lr in lrs) == pytest.approx(peak, rel=0.02)
    assert lrs[-1][1] == pytest.approx(floor, rel=0.05)  # the last step trained within 5% of the floor
