"""Faults a real run meets: a full disk (a real 6 MB tmpfs where the test may mount one)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tests.integration.conftest import llm, tiny


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs (root with CAP_SYS_ADMIN, as in our CI containers); skipped where it cannot be mounted (the
    unit tests inject ENOSPC into every writer instead)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_a_full_disk_ends_the_run_in_one_line_and_leaves_no_file_that_does_not_load(corpus_dir, tmp_path, small_disk):
    run = small_disk / "run"
    proc = llm("train", *tiny(corpus_dir, tmp_path), "logger=csv", "trainer.max_steps=400",
               "checkpoint.every_n_train_steps=10", "checkpoint.keep=100", "trainer.val_check_interval=400",
               "trainer.precision=32-true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on device writing ") and "bytes free there" in last, last
    assert f"in {run}" in last and "Traceback" not in proc.stderr
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"))
    assert ckpts and "kept: " in last and str(ckpts[-1].parent) in last
    for ckpt in ckpts:  # every file under a final name loads
        torch.load(ckpt, weights_only=True, map_location="cpu")
    assert not list(run.rglob("*.tmp")) and not (run / "metrics.json").exists()
    assert not any(Path("/tmp").glob("tmp*.ckpt"))
