"""One live run per run dir: two runs writing one folder overwrite each other's checkpoints, metrics and export.

The first run holds an OS lock (`flock`) on `<run dir>/.run.lock` for its lifetime and writes who it is beside
it; the kernel drops the lock when the process dies, however it dies, so a crashed or killed run never keeps a
folder locked (and `resume=auto` in the same folder works at once). Only the launching process locks: ranks a
DDP launcher starts, and ranks other than 0 under torchrun/SLURM, share their rank 0's run dir.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from lightning_llm.errors import UserError

LOCK, OWNER = ".run.lock", ".run.owner"
_held: list[FileLock] = []  # held until the process exits


def _launching_process() -> bool:
    # Lightning's subprocess launcher sets LOCAL_RANK for the ranks it starts; torchrun and SLURM set RANK
    return all(os.environ.get(var, "0") == "0" for var in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


def lock_run_dir(run_dir: Path) -> None:
    """Take `run_dir` for this process, or fail in one line naming the run that has it."""
    if not _launching_process():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another run is using the run dir {run_dir} ({_owner(run_dir)}): wait for it to end, or "
                        "give this one its own hydra.run.dir=...") from None
    _held.append(lock)
    (run_dir / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


def _owner(run_dir: Path) -> str:
    try:
        who = json.loads((run_dir / OWNER).read_text())
        return f"process {who['pid']} on {who['host']}, started {who['started']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not said who it is yet"
