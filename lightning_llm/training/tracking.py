"""W&B logging that never prompts or hangs: online with credentials, offline (sync later) without."""

from __future__ import annotations

import csv
import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.logger import _add_prefix
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


def logging_step(trainer) -> int:
    """The step Lightning logs the current batch's metrics at (one behind `global_step` once the optimizer has
    stepped): a callback that logs at the same step keeps W&B's history monotonic, so nothing is dropped."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def has_wandb_credentials() -> bool:
    """An API key in the environment or a netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class StepWandbLogger(WandbLogger):
    """Logs with W&B's own step = the trainer's global step.

    W&B drops data logged at a step below its current one, so after an exact resume from step k the
    steps the killed run had already logged past k are not written twice into the run's history.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:  # W&B warns about the key, even when it is None
            self._wandb_init.pop("anonymous", None)

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = _add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is None:
            self.experiment.log(metrics)
        else:
            self.experiment.log({**metrics, "trainer/global_step": step}, step=step)


def wandb_logger(project: str, save_dir: str, name: str | None = None, mode: str = "auto",
                 **kwargs) -> WandbLogger:
    """A Lightning `WandbLogger`. `mode`: auto (online only with credentials), online, offline, disabled.

    `WANDB_MODE` in the environment wins over `mode`, as in W&B itself.
    """
    mode = os.environ.get("WANDB_MODE") or mode
    if mode == "auto":
        mode = "online" if has_wandb_credentials() else "offline"
        if mode == "offline":
            log.info("No W&B credentials found: logging offline (run `wandb login` to log online)")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return StepWandbLogger(project=project, name=name, save_dir=save_dir, offline=mode == "offline",
                       mode=mode, **kwargs)


def sync_hint(logger) -> str | None:
    """The command that uploads an offline W&B run, or None for other loggers."""
    if not isinstance(logger, WandbLogger) or not logger._offline:
        return None
    run_dir = Path(logger.experiment.dir).parent  # <save_dir>/wandb/offline-run-*/files -> its run folder
    return f"wandb sync {run_dir}"


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv and appends to it, under the header it already has."""

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the file here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class AppendingCSVLogger(CSVLogger):
    """Lightning's `CSVLogger`, except that
    - a run resumed in the same folder appends to `metrics.csv` instead of replacing it: the rows logged before a
      kill stay, and the steps the killed run had logged past its last checkpoint are logged again after them
      (readers take the last value of a step);
    - rows reach the file `flush_logs_every_n_steps` rows at a time, at checkpoints (with `FlushLogsAtCheckpoints`
      among the callbacks) and at the end, not at every step: Lightning's loop calls `save()` after each step's
      metrics, and opening the file each time cost ~0.5-1 ms a step at small shapes (benchmarks/step_overhead).
    """

    @rank_zero_only
    def save(self) -> None:
        if self._experiment is not None and len(self._experiment.metrics) >= self._flush_logs_every_n_steps:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write every buffered row to metrics.csv now."""
        super().save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self.flush()

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def fill_missing(self, key: str, points: list[tuple[int, float]]) -> None:
        """Write the `(step, value)` points of `key` that metrics.csv lacks: a run killed right after its
        checkpoint never flushed the last steps' rows, which the checkpoint itself recorded."""
        self.experiment.save()
        path = self.experiment.metrics_file_path
        logged = set()
        if self._fs.isfile(path):
            with self._fs.open(path, "r", newline="") as f:
                logged = {int(r["step"]) for r in csv.DictReader(f) if r.get(key) not in (None, "")}
        for step, value in points:
            if step not in logged:
                self.log_metrics({key: value}, step=step)
        self.flush()


class FlushLogsAtCheckpoints(L.Callback):
    """Writes out what the loggers buffer right before each checkpoint is saved, so that a run killed later and
    resumed from that checkpoint has every row logged before it on disk (the resumed run logs the steps after
    it again)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.flush() if isinstance(logger, AppendingCSVLogger) else logger.save()
