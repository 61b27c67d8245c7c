"""Preemption: SIGTERM (what SLURM, Kubernetes and spot instances send before killing) and Ctrl-C end a run
with a checkpoint of the step reached, one line saying how to continue, and an exit status that says "not
finished" (143 = 128 + SIGTERM, 130 = 128 + SIGINT, as a shell reports a killed command), so a scheduler or a
shell `&&` never reads a preempted run as done. No metrics.json is written for it.

Lightning stops at a step boundary on SIGTERM and raises `SIGTERMException`, a `SystemExit` with status 0; on
Ctrl-C it exits with 1. `PreemptionCheckpoint` saves on exactly these two, and `unfinished_run_exits` turns them
into the statuses above. Under DDP, `SigtermAtStepBoundary` replaces Lightning's SIGTERM handler, whose broadcast
from inside the handler can meet another rank's gradient all-reduce and hang both (seen in CI).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_SIGTERM, EXIT_SIGINT = 143, 130


class PreemptionCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that also saves when the run is preempted (SIGTERM) or interrupted (Ctrl-C), and on no
    other exception: after a crash the weights may be mid-update, and the last periodic checkpoint is the one to
    resume from."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.save_on_exception = isinstance(exception, SIGTERMException | KeyboardInterrupt)
        super().on_exception(trainer, pl_module, exception)
        last = Path(self.dirpath or ".") / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        if self.save_on_exception and self.save_last and not last.exists() and trainer.world_size == 1:
            # Ctrl-C can land while the step's checkpoints are being written: the step file is whole but the
            # interrupted last.ckpt was dropped (atomically); the step counts as saved, so write it again
            trainer.save_checkpoint(last)


class SigtermAtStepBoundary(L.Callback):
    """Under DDP: SIGTERM only notes itself, and all ranks agree at the end of every training batch (one
    all-reduce of one number, where every rank is anyway) whether any rank was sent it; then Lightning stops
    every rank at that same step, and the checkpoint's collectives match. Whichever rank the scheduler signals
    (the launching one, or all of them as SLURM does), none is left waiting."""

    def __init__(self) -> None:
        self._sent = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning registered its handlers (trainer._run), so this one replaces them for the fit
        if trainer.world_size > 1 and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum: int, frame: object) -> None:
        self._sent = True  # nothing else here: a collective or a log call inside a handler is what hangs

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.world_size == 1 or not dist.is_initialized():
            return
        sent = torch.tensor([int(self._sent)], device=trainer.strategy.root_device)
        dist.all_reduce(sent, op=dist.ReduceOp.MAX)
        if sent.item():
            # Lightning's own check at the end of this batch then raises SIGTERMException on every rank
            trainer._signal_connector.received_sigterm = True


@contextlib.contextmanager
def unfinished_run_exits(trainer: L.Trainer, run_dir: Path) -> Iterator[None]:
    """Around `trainer.fit`: a preempted or interrupted fit prints where it stopped and exits 143 / 130."""
    try:
        yield
    except BaseException as e:
        sigterm = isinstance(e, SIGTERMException) or trainer.received_sigterm
        stopped = trainer.state.status == TrainerStatus.INTERRUPTED
        interrupted = isinstance(e, KeyboardInterrupt | SystemExit) and stopped
        if not (sigterm or interrupted):
            raise
        if trainer.is_global_zero:
            what = "preempted (SIGTERM)" if sigterm else "interrupted (Ctrl-C)"
            print(f"\nRun {what} at step {trainer.global_step} of {trainer.max_steps}, not finished: the checkpoint "
                  f"is in {run_dir / 'checkpoints'}; continue with: {resume_command(run_dir)}",
                  file=sys.stderr, flush=True)
        raise SystemExit(EXIT_SIGTERM if sigterm else EXIT_SIGINT) from None


def resume_command(run_dir: Path, argv: list[str] | None = None) -> str:
    """The command that continues this run: its own arguments, in its run dir, with `resume=auto`."""
    argv = sys.argv[1:] if argv is None else argv
    kept = [a for a in argv if not a.startswith(("hydra.run.dir=", "+hydra.run.dir=", "resume=", "ckpt_path="))]
    return shlex.join(["llm-train", *kept, f"hydra.run.dir={run_dir}", "resume=auto"])
