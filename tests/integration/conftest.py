"""The trained tiny run every CLI test starts from, made once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def llm(verb: str, *overrides: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"lightning_llm.cli.{verb}", *overrides]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tiny(corpus_dir: Path, tmp: Path) -> list[str]:
    return ["recipe=tiny", f"data.data_files.train={corpus_dir}/*.txt", "data.max_files=null", "data.seq_len=32",
            "tokenizer.vocab_size=300", "model.config.max_position_embeddings=64", f"paths.data_dir={tmp}/data",
            "trainer.max_steps=20", "trainer.val_check_interval=10", "checkpoint.every_n_train_steps=10",
            "optim.warmup_steps=2", "trainer.accelerator=cpu"]


@pytest.fixture(scope="session")
def trained(corpus_dir, tmp_path_factory) -> Path:
    """Trained under bf16-mixed forced, as `precision: auto` trains on GPUs (and on CPUs where bf16 is faster),
    whatever this host: resume, export, eval, int8/ONNX and distillation then start from a bf16 run. The
    single-process and DDP runs of test_training.py train in 32-true."""
    tmp = tmp_path_factory.mktemp("cli")
    run = tmp / "run"
    task = tmp / "task.jsonl"
    task.write_text(json.dumps({"context": "The king", "choices": [" and", " zzz"], "label": 0}) + "\n")
    proc = llm("train", *tiny(corpus_dir, tmp), "logger=csv", f"hydra.run.dir={run}", "samples.every_n_steps=10",
               "trainer.precision=bf16-mixed", "export.gguf=f16",
               "eval.every_n_steps=10", f"eval.tasks=[{task}]", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[samples at step 10]" in proc.stdout and "[samples at step 20]" in proc.stdout
    return run
