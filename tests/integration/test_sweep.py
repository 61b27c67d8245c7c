"""A hyperparameter search with Hydra's Optuna sweeper: killed mid-trial, resumed by the same command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import llm, tiny

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


@pytest.mark.slow
def test_a_killed_sweep_resumes_its_cut_trial_and_names_the_best(corpus_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hparams_search=lr_warmup_batch", *tiny(corpus_dir, tmp_path), "optim=muon", "logger=csv",
            "trainer.max_steps=20", "trainer.val_check_interval=20", "checkpoint.every_n_train_steps=5",
            "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen([sys.executable, "-m", "lightning_llm.cli.train", *args], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list((sweep / "1" / "checkpoints").glob("step-*.ckpt")) and first.poll() is None:
        assert time.monotonic() < deadline, "trial 1 wrote no checkpoint"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # as a preempted node: no chance to clean up
    first.wait()
    assert not (sweep / "sweep.json").exists()

    second = llm("train", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    results = json.loads((sweep / "sweep.json").read_text())
    trials = results["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] and {t["state"] for t in trials} == {"COMPLETE"}
    for t in trials:  # each trial's value is its run's val/bpb, and its run is its own folder
        assert Path(t["run_dir"]) == sweep / str(t["number"])
        assert json.loads((sweep / str(t["number"]) / "metrics.json").read_text())["val"]["bpb"] == t["value"]
        assert t["metrics"]["val"]["bpb"] == t["value"] and "bpb" in t["metrics"]["test"]  # its run's figures
        assert set(t["params"]) == {"optim.lr", "optim.muon.lr", "data.batch_size"}  # warmup fixed above
    assert "resume=auto: resuming from" in (sweep / "1" / "train.log").read_text()  # the cut trial continued
    assert trials[2]["params"] != trials[0]["params"]  # the resumed sampler did not start its draws over
    best = min(trials, key=lambda t: t["value"])
    assert results["best_trial"]["number"] == best["number"] and results["direction"] == "minimize"
    assert f"Best trial {best['number']}: val/bpb {best['value']:.6g}" in second.stdout
    assert second.stdout.count("| complete |") == 3


@pytest.mark.slow
def test_a_failed_trial_is_one_line_and_a_sweep_with_none_completed_says_why(corpus_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = llm("train", "-m", "hydra/sweeper=optuna", *tiny(corpus_dir, tmp_path), "logger=csv", "trainer.max_steps=2",
               "trainer.val_check_interval=2", "optimized_metric=val/nope", "optim.lr=tag(log, interval(1e-3, 1e-2))",
               "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    why = "optimized_metric='val/nope' is not in this run's metrics.json: choose one of ['val/loss'"
    failed = [line for line in (proc.stdout + proc.stderr).splitlines() if "failed: " in line]
    assert len(failed) == 2 and all(why in line for line in failed)  # each trial's failure, one line each
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no trial of the sweep in {sweep} completed; the first failure: ") and why in last
    assert "Traceback" not in proc.stderr
