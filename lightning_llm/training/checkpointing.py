"""Resume support: find the newest readable checkpoint of a run, and carry the W&B run id in checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from lightning_llm.checkpoint_files import read_state
from lightning_llm.errors import UserError

log = logging.getLogger(__name__)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint in `folder` that loads (a file, or a DeepSpeed folder); unreadable (e.g. truncated)
    ones are skipped loudly."""
    candidates = sorted(Path(folder).glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in candidates:
        if (problem := checkpoint_problem(path)) is None:
            return path
        log.warning("Checkpoint %s is unreadable (%s): skipped, trying the previous one", path, problem)
    return None


def checkpoint_problem(path: Path) -> str | None:
    """None when `path` loads as a checkpoint, else what went wrong, in one line."""
    try:
        read_state(path)
    except Exception as e:  # torch raises RuntimeError, EOFError or UnpicklingError alike
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def resolve_resume(resume: str | None, ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """`resume=auto`: the run dir's newest readable checkpoint (None on a fresh run); else `ckpt_path`."""
    if resume and ckpt_path:
        raise UserError("give either resume=auto or ckpt_path=PATH, not both")
    if resume not in (None, "auto"):
        raise UserError(f"resume={resume!r}: use resume=auto (newest checkpoint of the run dir) or ckpt_path=PATH")
    if resume == "auto":
        found = latest_checkpoint(checkpoint_dir)
        if found is None and any(checkpoint_dir.glob("*.ckpt")):
            raise UserError(f"no readable checkpoint in {checkpoint_dir}: every one failed to load; delete them "
                            "to start over")
        log.info("resume=auto: %s", f"resuming from {found}" if found else f"no checkpoint in {checkpoint_dir}, "
                 "starting fresh")
        return str(found) if found else None
    if ckpt_path:
        if not Path(ckpt_path).exists():
            raise UserError(f"ckpt_path={ckpt_path} does not exist")
        if (problem := checkpoint_problem(Path(ckpt_path))) is not None:
            raise UserError(f"ckpt_path={ckpt_path} is unreadable ({problem}): "
                            "it may be truncated; pick an older one, or use resume=auto to take the newest "
                            "readable checkpoint of the run")
    return ckpt_path


def check_same_model(ckpt_path: str | None, hparams: dict) -> None:
    """Resuming into another model config would fail deep inside `load_state_dict`: name what differs."""
    if not ckpt_path:
        return
    saved = read_state(ckpt_path).get("hyper_parameters")
    if not saved:
        raise UserError(f"{ckpt_path} is not a checkpoint of llm-train (it has no hyper_parameters)")
    keys = [k for k in ("arch", "vocab_size", "init_from", "labels", "lora") if k in hparams]
    diffs = [f"{k}: {saved.get(k)!r} in the checkpoint, {hparams[k]!r} now" for k in keys if saved.get(k) != hparams[k]]
    old_opt = (saved.get("optim") or {}).get("name", "adamw")
    new_opt = (hparams.get("optim") or {}).get("name", "adamw")
    if old_opt != new_opt:
        diffs.append(f"optim: {old_opt!r} in the checkpoint, {new_opt!r} now (its state cannot be carried over)")
    old, new = saved.get("config") or {}, hparams.get("config") or {}
    diffs += [f"model.config.{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now"
              for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if diffs:
        raise UserError(f"{ckpt_path} was trained with another model config ({'; '.join(diffs)}): resume with the "
                        "same model settings (recipe and model.* overrides), or start a new run dir")


def wandb_id_of(ckpt_path: str | None) -> str | None:
    if not ckpt_path:
        return None
    return read_state(ckpt_path).get("wandb_run_id")


class RunIdInCheckpoint(L.Callback):
    """Stores the W&B run id in every checkpoint, so a resumed run continues the same W&B run."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module, checkpoint: dict) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint["wandb_run_id"] = logger.version
