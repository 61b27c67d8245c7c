"""W&B logging that never prompts or hangs: online with credentials, offline (sync later) without."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from lightning.fabric.utilities.logger import _add_prefix
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


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
