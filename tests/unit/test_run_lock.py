"""One live run per run dir: a real second process is refused naming the first; a killed one keeps nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from lightning_llm.errors import UserError
from lightning_llm.run_lock import lock_run_dir

HOLD = "import sys, time; from pathlib import Path; from lightning_llm.run_lock import lock_run_dir; " \
       "lock_run_dir(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"


def test_a_second_run_in_a_live_run_dir_is_refused_and_a_killed_run_keeps_no_lock(tmp_path, monkeypatch):
    for var in ("LOCAL_RANK", "RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"another run is using the run dir {tmp_path} \(process {first.pid} "
                                            r"on .*, started .*\): wait for it to end, or give this one its own "
                                            r"hydra.run.dir"):
            lock_run_dir(tmp_path)
        monkeypatch.setenv("LOCAL_RANK", "1")  # a rank the launcher started shares the launcher's run dir
        lock_run_dir(tmp_path)
        monkeypatch.delenv("LOCAL_RANK")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    deadline = time.time() + 10
    while True:  # the kernel drops a dead process's lock
        try:
            lock_run_dir(tmp_path)
            break
        except UserError:
            assert time.time() < deadline
            time.sleep(0.1)
