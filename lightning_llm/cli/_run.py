"""What every training run of `llm-train` builds the same way: its logger and its Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lightning_llm.data.cleaning.report import log_to_wandb
from lightning_llm.training.callbacks import LossCurves, StepProgressBar, ThroughputMFU
from lightning_llm.training.checkpoint_io import use_atomic_checkpoints
from lightning_llm.training.checkpointing import RunIdInCheckpoint, wandb_id_of
from lightning_llm.training.precision import StepProbe, resolve_precision
from lightning_llm.training.preemption import PreemptionCheckpoint, SigtermAtStepBoundary
from lightning_llm.training.tracking import FlushLogsAtCheckpoints


def build_logger(cfg: DictConfig, ckpt_path: str | None, report: Path | None = None):
    """The configured logger (False for none), continuing the W&B run of a resumed checkpoint; a new W&B run
    gets the data-cleaning `report`."""
    if not cfg.get("logger"):
        return False
    wandb_id = wandb_id_of(ckpt_path)
    is_wandb = cfg.logger._target_.endswith("wandb_logger")
    extra = {"id": wandb_id} if wandb_id and is_wandb else {}
    if is_wandb and cfg.logger.get("group") is None and (sweep := _sweep_name()):
        extra["group"] = sweep  # the trials of a sweep side by side in W&B
    logger = instantiate(cfg.logger, **extra)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0 and not ckpt_path and report and report.is_file():
        log_to_wandb(json.loads(report.read_text()), logger.experiment)
    return logger


def _sweep_name() -> str | None:
    """The sweep a multirun job belongs to: its Optuna study's name, else its sweep dir's."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    return str(hc.sweeper.get("study_name") or Path(hc.sweep.dir).name)


def build_trainer(cfg: DictConfig, run_dir: Path, strategy, logger, extra: list[L.Callback],
                  model: torch.nn.Module | None = None) -> L.Trainer:
    """The run's Trainer; `model` (the one to train) is what `trainer.precision: auto` times on a CPU."""
    callbacks = [
        PreemptionCheckpoint(dirpath=run_dir / "checkpoints", filename="step-{step:07d}", auto_insert_metric_name=False,
                        every_n_train_steps=cfg.checkpoint.every_n_train_steps, save_last=True,
                        monitor="step", mode="max", save_top_k=cfg.checkpoint.keep),
        SigtermAtStepBoundary(), RunIdInCheckpoint(), LossCurves(run_dir / "curves.png"),
        ThroughputMFU(cfg.perf.every_n_steps, cfg.perf.watts_per_core, cfg.perf.grid_co2_g_per_kwh), *extra,
    ] + ([LearningRateMonitor(logging_interval="step"), FlushLogsAtCheckpoints()] if logger else []) \
      + ([StepProgressBar()] if cfg.trainer.enable_progress_bar and _has_rich() else [])
    trainer_args = plain(cfg.trainer)
    probe = None if model is None else StepProbe(model, cfg.data.batch_size, cfg.data.seq_len)
    trainer_args["precision"] = resolve_precision(trainer_args["precision"], trainer_args["accelerator"], probe)
    trainer = L.Trainer(**trainer_args, strategy=strategy, logger=logger, callbacks=callbacks,
                        default_root_dir=run_dir, use_distributed_sampler=False)  # our sampler shards
    use_atomic_checkpoints(trainer)
    return trainer


def gguf_type(cfg: DictConfig, model_type: str) -> str | None:
    """`export.gguf`, checked before training (the type, the architecture) so a long run cannot fail at its end."""
    kind = (cfg.get("export") or {}).get("gguf")
    if kind:
        from lightning_llm.export.gguf import check_target

        check_target(model_type, kind, key="export.gguf")
    return kind or None


def export_gguf_too(kind: str | None, run_dir: Path) -> None:
    """The run's export/ also as `export-<kind>.gguf` (+ its Ollama .Modelfile), when `export.gguf` asks."""
    if not kind:
        return
    from lightning_llm.export.gguf import export_gguf

    made = export_gguf(run_dir / "export", run_dir / f"export-{kind}.gguf", kind)
    print(f"GGUF for llama.cpp/Ollama: {made['out']} ({made['mb']:.1f} MB), {made['modelfile'].name}")


def _has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None  # else Lightning's tqdm bar, which has no "/-2"


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}
