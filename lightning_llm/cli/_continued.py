"""Continued pretraining (`llm-train init_from=X`): the base model's folder, the keys it rules out, and its
figures before the first step."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lightning_llm.data import PretrainDataModule
from lightning_llm.errors import UserError
from lightning_llm.io import write_json
from lightning_llm.models.pretrained import resolve_model
from lightning_llm.tasks.defaults import count_parameters
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.optim import OptimConfig

log = logging.getLogger("lightning_llm")


def continued_from(cfg: DictConfig) -> Path | None:
    """Continued pretraining: the local folder of `init_from` (None for a new model), after refusing every
    command-line model or tokenizer key that would contradict it."""
    if not cfg.get("init_from"):
        return None
    folder = resolve_model(cfg.init_from)
    overrides = list(HydraConfig.get().overrides.task)
    check_init_from_overrides(str(cfg.init_from), folder, overrides)
    continued_optimizer(cfg, count_parameters(folder), overrides)
    log.info("Continued pretraining from %s: its architecture, weights and tokenizer (the recipe's model.* and "
             "tokenizer.* keys do not apply)", cfg.init_from)
    return folder


def continued_optimizer(cfg: DictConfig, n_params: int, overrides: list[str]) -> bool:
    """A real pretrained base (at least `continued.large_from` parameters) continues with AdamW at
    `continued.lr`, not the recipe's optimizer: the default recipe's Muon at a from-scratch rate is tuned for a
    0.7M model trained here, its orthogonalization took 28.8 s per step over SmolLM2-135M's matrices on a CPU (fused
    AdamW 0.8 s), and a base pretrained with AdamW is better continued with it (Moonlight). `optim=...` or
    `optim.*=...` on the command line wins. Returns whether the optimizer was replaced (cfg.optim, in place)."""
    rule = cfg.get("continued")
    keys = [o.lstrip("+~").partition("=")[0] for o in overrides]
    if rule is None or n_params < float(rule.large_from) or any(k == "optim" or k.startswith("optim.") for k in keys):
        return False
    optim = asdict(OptimConfig(name="adamw", lr=float(rule.lr), warmup_steps=int(rule.warmup_steps),
                               min_lr_ratio=float(rule.min_lr_ratio)))
    optim["betas"] = list(optim["betas"])
    cfg.optim = OmegaConf.create(optim)
    log.info("init_from has %.1fM parameters (at least continued.large_from=%.0fM): AdamW at lr %g, warmup %d steps "
             "(continued.*; optim=... or optim.*=... on the command line wins)", n_params / 1e6,
             float(rule.large_from) / 1e6, optim["lr"], optim["warmup_steps"])
    return True


# keys that define the model or its tokenizer: with init_from, the base model defines them
_MODEL_KEYS = ("model.arch", "model.config.", "model.init.", "tokenizer.")
_MODEL_GROUPS = ("model", "tokenizer")


def check_init_from_overrides(source: str, folder: Path, overrides: list[str]) -> None:
    """Refuse, in one line, a command-line key that would contradict the model `init_from` brings."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder).to_dict()
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in _MODEL_GROUPS or key.startswith(_MODEL_KEYS):
            name = key.removeprefix("model.config.")
            if key.startswith("model.config.") and str(config.get(name)) == value:
                continue  # agrees with the base
            has = f" (it has {name}={config[name]})" if key.startswith("model.config.") and name in config else ""
            raise UserError(f"{override} contradicts init_from={source}, which brings its own architecture, weights "
                            f"and tokenizer{has}: drop the key, or leave out init_from to train a new model")


BEFORE = "val_before_training.json"


def validate_before_training(trainer: L.Trainer, module: CausalLMModule, datamodule: PretrainDataModule,
                             run_dir: Path, resumed: bool) -> dict | None:
    """The base model's figures on the whole validation split, logged at step 0 (continued pretraining), kept in
    <run dir>/val_before_training.json so that a resumed run's metrics.json still has them."""
    path = run_dir / BEFORE
    if resumed:
        return json.loads(path.read_text()) if path.is_file() else None
    limit, trainer.limit_val_batches = trainer.limit_val_batches, 1.0
    result = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    trainer.limit_val_batches = limit
    before = {k.split("/", 1)[1]: v for k, v in result.items()}
    if trainer.is_global_zero:
        write_json(path, before)
    return before
