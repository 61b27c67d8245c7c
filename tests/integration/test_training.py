"""Training that scales and survives: DDP on CPU matches one process; SIGKILL + resume=auto is exact."""

from __future__ import annotations

import csv
import json
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
    task = tmp / "task.jsonl"
    task.write_text(json.dumps({"context": "The king", "choices": [" and", " zzz"], "label": 0}) + "\n")
    # samples and task evaluation fire every 4 steps; batches of one row give the test split an odd count of
    # batches, which two processes cannot split evenly without padding
    common = [*tiny(corpus_dir, tmp), "logger=csv", "trainer.max_steps=12", "trainer.val_check_interval=6",
              "trainer.precision=32-true", "samples.every_n_steps=4", "samples.max_new_tokens=6",
              f"eval.tasks=[{task}]", "eval.every_n_steps=4", "data.eval_batch_size=1",
              "trainer.limit_test_batches=1.0"]
    one = llm("train", *common, "data.batch_size=8", f"hydra.run.dir={tmp / 'one'}", cwd=tmp)
    assert one.returncode == 0, one.stderr[-2000:]
    manifest = json.loads((Path(json.loads((tmp / "one" / "metrics.json").read_text())["prepared_data"]) /
                           "manifest.json").read_text())
    assert manifest["splits"]["test"]["sequences"] % 2 == 1  # the uneven case
    return tmp, common


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp2", marks=pytest.mark.slow)])
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
    assert two.stdout.count("[samples at step 4]") == 1 and "[samples at step 12]" in two.stdout  # rank 0 prints
    rows = list(csv.DictReader((tmp_path / strategy / "csv" / "metrics.csv").open()))
    assert [r["step"] for r in rows if r.get("eval/task/acc")] == ["3", "7", "11"]
    one_m, two_m = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", strategy))
    for split in ("val", "test"):  # every evaluation token counted once, padding rows not at all
        for key, value in one_m[split].items():
            assert two_m[split][key] == pytest.approx(value, rel=1e-5, abs=1e-5), (split, key)


# bf16-mixed, the precision a GPU resumes in; the DDP kill below resumes a 32-true run
@pytest.mark.slow
def test_sigkill_then_resume_auto_is_exact(corpus_dir, tmp_path):
    steps = 60
    common = [*tiny(corpus_dir, tmp_path), "logger=csv", "data.batch_size=64", f"trainer.max_steps={steps}",
              "trainer.precision=bf16-mixed",
              "trainer.val_check_interval=30", "checkpoint.every_n_train_steps=5", "samples.max_new_tokens=1",
              "++model.config.attention_dropout=0.1"]  # training draws random numbers
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
    assert 10 <= resumed_from < steps

    resumed = llm("train", *common, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = losses(tmp_path / "straight"), losses(run)
    after = [s for s in a if s >= resumed_from]
    assert len(after) == steps - resumed_from
    assert b == a  # the resumed run appended to metrics.csv: every step of the log there, with its value
    curves = next(v for k, v in torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"].items()
                  if k.startswith("LossCurves"))
    assert [s for s, _ in curves["train"]] == list(range(1, steps + 1))  # curves.png is drawn from the whole run
    assert [b[s] for s in after] == [a[s] for s in after]  # bit-identical per-step losses after the kill
    wa, wb = load_file(tmp_path / "straight" / "export" / "model.safetensors"), load_file(run / "export" /
                                                                                          "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("sig,status,ddp", [(signal.SIGTERM, 143, False),
                                            pytest.param(signal.SIGINT, 130, False, marks=pytest.mark.slow),
                                            pytest.param(signal.SIGTERM, 143, True, marks=pytest.mark.slow)])
def test_a_preempted_run_saves_its_step_says_how_to_resume_and_exits_unfinished(corpus_dir, tmp_path, sig, status,
                                                                              ddp):
    """A real signal to a real run: SIGTERM (a scheduler's preemption) or SIGINT (Ctrl-C), one process or two DDP
    ranks (the signal to the launching one, as a scheduler sends it)."""
    common = [*tiny(corpus_dir, tmp_path), "logger=csv", "data.batch_size=8", "trainer.max_steps=400",
              "trainer.val_check_interval=400", "checkpoint.every_n_train_steps=3", "samples.max_new_tokens=1",
              "trainer.precision=32-true"] + (["strategy=ddp", "trainer.devices=2"] if ddp else [])
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", *common, f"hydra.run.dir={run}"]
    # SIGINT as a terminal delivers it: a suite started in the background (`cmd &`) runs with SIGINT ignored, which
    # its children inherit, and Python then never raises KeyboardInterrupt (the run would finish as if never sent)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not (run / "checkpoints" / "step-0000003.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be stopped"
        time.sleep(0.02)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err[-3000:]
    said = [line for line in err.splitlines() if line.startswith("Run ")]
    assert len(said) == 1 and "not finished" in said[0], err[-3000:]
    step = int(said[0].split(" at step ")[1].split()[0])
    assert 3 <= step < 400 and not (run / "metrics.json").exists()
    newest = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert newest["global_step"] == step  # the step reached is saved, not only the last periodic one
    resume = said[0].split("; continue with: ", 1)[1]
    assert resume.startswith("llm-train ") and f"hydra.run.dir={run}" in resume and resume.endswith("resume=auto")
    if sig == signal.SIGINT:  # the slow case resumes too (the fast one stops there: a run's start costs ~15 s)
        resumed = llm("train", *common, "trainer.max_steps=" + str(step + 3), "resume=auto", f"hydra.run.dir={run}",
                      cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert json.loads((run / "metrics.json").read_text())["steps"] == step + 3


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    from lightning_llm.training.checkpointing import latest_checkpoint

    torch.save({"global_step": 5}, tmp_path / "step-0000005.ckpt")
    time.sleep(0.01)
    torch.save({"global_step": 10, "pad": torch.zeros(10_000)}, tmp_path / "step-0000010.ckpt")
    data = (tmp_path / "step-0000010.ckpt").read_bytes()
    (tmp_path / "step-0000010.ckpt").write_bytes(data[: len(data) // 2])  # a half-written file
    assert latest_checkpoint(tmp_path) == tmp_path / "step-0000005.ckpt"
    assert "step-0000010.ckpt is unreadable" in caplog.text


@pytest.mark.slow  # ~20-60 s: runs in CI after the default suite
def test_resume_continues_the_same_wandb_run(corpus_dir, tmp_path):
    run = tmp_path / "wb"
    task = tmp_path / "task.jsonl"
    task.write_text(json.dumps({"context": "The king", "choices": [" and", " zzz"], "label": 0}) + "\n")
    common = [*tiny(corpus_dir, tmp_path), "logger=wandb", "samples.max_new_tokens=1", f"hydra.run.dir={run}",
              "samples.every_n_steps=10", f"eval.tasks=[{task}]", "eval.every_n_steps=5"]
    first = llm("train", *common, "trainer.max_steps=20", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    console = first.stderr + first.stdout
    assert "Tried to log to step" not in console  # no metric dropped by W&B, samples and task evals included
    for noise in ("anonymous setting", "litlogger", "Total FLOPs", "LeafSpec", "/-2", "model summary"):
        assert noise not in console, noise  # third-party noise stays in the run's log file
    assert "LeafSpec" in (run / "train.log").read_text()
    second = llm("train", *common, "trainer.max_steps=30", "resume=auto", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    runs = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and runs[0].rsplit("-", 1)[1] == runs[1].rsplit("-", 1)[1]  # one W&B run id
    assert "wandb sync" in second.stdout
    tables = " ".join(p.name for p in (run / "wandb").rglob("*.table.json"))
    assert "cleaning_steps" in tables and "dropped_by_reason" in tables  # the cleaning report: table, bar chart


@pytest.mark.slow
def test_a_failed_run_prints_its_error_last(corpus_dir, tmp_path):
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", *tiny(corpus_dir, tmp_path), "logger=wandb",
           "trainer.max_steps=-1", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, env={**os.environ, "WANDB_SILENT": "false"})
    assert proc.returncode == 2
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[-1].startswith("error: optim.schedule=cosine decays toward the last step"), lines[-5:]
    assert "wandb" in proc.stdout  # W&B did print its teardown, before the error


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
    real = model.nats_sum  # what the training loss sums (fused with the LM head where it can be)
    model.nats_sum = lambda batch: real(batch) * (float("nan") if model.trainer.global_step == 3 else 1.0)
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, enable_model_summary=False)
    if action == "stop":
        with pytest.raises(UserError, match="training loss is nan at step 3: stopped"):
            trainer.fit(model, dm)
    else:
        trainer.fit(model, dm)
        assert model.skipped_steps == 1 and trainer.global_step == dm.batches_consumed == 6
        assert all(torch.isfinite(p).all() for p in model.parameters())


def _run_until(cmd: list[str], cwd: Path, marker: Path, timeout: float = 240) -> None:
    """Start `cmd` in its own process group and SIGKILL the whole group (every rank) once `marker` exists."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_of_every_ddp_rank_then_resume_auto_is_exact_and_keeps_the_whole_log(corpus_dir, tmp_path):
    # a data mixture (two sources by weight), so the draw by weight is checked across ranks and a kill too
    mixture = (f"data.mixture={{a: {{weight: 3, data_files: {{train: '{corpus_dir}/doc0*.txt'}}}}, "
               f"b: {{weight: 1, data_files: {{train: '{corpus_dir}/doc[12]*.txt'}}, "
               "cleaning: {near_dedup: null}}}")
    common = [*tiny(corpus_dir, tmp_path), mixture, "logger=csv", "data.batch_size=16", "trainer.max_steps=40",
              "trainer.val_check_interval=20", "checkpoint.every_n_train_steps=5", "samples.max_new_tokens=1",
              "strategy=ddp", "trainer.devices=2", "trainer.precision=32-true", "trainer.log_every_n_steps=1",
              "++model.config.attention_dropout=0.1"]  # training draws random numbers on every rank
    straight = llm("train", *common, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run = tmp_path / "killed"
    _run_until([sys.executable, "-m", "lightning_llm.cli.train", *common, f"hydra.run.dir={run}"], tmp_path,
               run / "checkpoints" / "step-0000010.ckpt")
    resumed_from = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.ckpt"))
    resumed = llm("train", *common, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = losses(tmp_path / "straight"), losses(run)
    assert b == a  # the whole per-step log, before and after the kill
    after = [s for s in a if s >= resumed_from]
    assert [b[s] for s in after] == [a[s] for s in after]  # bit-identical per-step losses after the kill
    wa, wb = (load_file(d / "export" / "model.safetensors") for d in (tmp_path / "straight", run))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    tokens = [_last(d, "data/a/tokens") + _last(d, "data/b/tokens") for d in (tmp_path / "straight", run)]
    assert tokens[0] == tokens[1] == 40 * 32 * 32  # 40 steps of 32 rows of 32 tokens, split by source
    assert 0.72 < _last(run, "data/a/share") < 0.78
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "straight", run))
    assert ma["val"]["a/bpb"] == mb["val"]["a/bpb"] and "b/bpb" in mb["test"]

    # one process is enough to be refused (a global batch of 4 against 32), and skips launching a second
    changed = llm("train", *common, "resume=auto", "data.batch_size=4", "trainer.devices=1", "trainer.max_steps=50",
                  f"hydra.run.dir={run}", cwd=tmp_path)
    assert changed.returncode == 2 and "trained with a global batch of 32 sequences" in changed.stderr


def _last(run: Path, key: str) -> float:
    """The last value of `key` in a run's CSV log."""
    return [float(r[key]) for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r.get(key)][-1]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args, "-m", "lightning_llm.cli.train"]


@pytest.mark.slow
def test_torchrun_ranks_prepare_the_data_once(corpus_dir, tmp_path):
    cmd = [*_torchrun("--standalone", "--nproc-per-node", "2"), *tiny(corpus_dir, tmp_path), "logger=csv",
           "strategy=ddp", "trainer.devices=2", "trainer.max_steps=6", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("Preparing local files") == 1 and "Reusing prepared data" in log  # by the other rank
    assert (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "outputs").exists()


# node-local data folders, the harder case (each node prepares its own, one run dir still); ranks sharing one
# data folder prepare once through the same lock in test_torchrun_ranks_prepare_the_data_once
@pytest.mark.slow
@pytest.mark.parametrize("data_dirs", ["node-local"])
def test_two_simulated_nodes_share_one_run_dir_and_export(corpus_dir, tmp_path, data_dirs):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    procs = []
    for node in (0, 1):
        data_dir = tmp_path / ("data" if data_dirs == "shared" else f"data-node{node}")
        cmd = [*_torchrun("--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1", "--rdzv-backend",
                          "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "twonodes"),
               *[o for o in tiny(corpus_dir, tmp_path) if not o.startswith("paths.data_dir=")],
               f"paths.data_dir={data_dir}", "logger=csv", "strategy=ddp",
               "trainer.num_nodes=2", "trainer.devices=1", "trainer.max_steps=6", f"hydra.run.dir={run}"]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    logs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    preparations = sum(log.count("Preparing local files") for log in logs)
    assert preparations == (1 if data_dirs == "shared" else 2)  # one per filesystem
    assert (run / "metrics.json").exists() and (run / "export" / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run", *(
        ["data"] if data_dirs == "shared" else ["data-node0", "data-node1"])])  # one run dir, no other
