"""Preemption: SIGTERM (what SLURM, Kubernetes and spot instances send before killing) and Ctrl-C end a run
with a checkpoint of the step reached, one line saying how to continue, and an exit status that says "not
finished" (143 = 128 + SIGTERM, 130 = 128 + SIGINT, as a shell reports a killed command), so a scheduler or a
shell `&&` never reads a preempted run as done. No metrics.json is written for it.

Lightning already stops at a step boundary on SIGTERM (all ranks together) and raises `SIGTERMException`, a
`SystemExit` with status 0; on Ctrl-C it exits with 1. `PreemptionCheckpoint` saves on exactly these two, and
`unfinished_run_exits` turns them into the statuses above.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning as L
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
