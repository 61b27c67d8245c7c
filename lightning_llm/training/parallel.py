"""Distributed strategies from config: which layers FSDP wraps, FSDP2 sharding, and up-front checks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import transformers
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from torch import nn
from transformers import PreTrainedModel

from lightning_llm.errors import UserError
from lightning_llm.models import model_from_weights


def decoder_layer_classes(arch: str) -> set[type[nn.Module]]:
    """The blocks a `transformers` architecture says must not be split (`_no_split_modules`)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if arch not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise UserError(f"model.arch={arch!r} has no causal-LM class in transformers")
    cls = getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[arch])
    module = sys.modules[cls.__module__]
    return {getattr(module, name) for name in (cls._no_split_modules or []) if hasattr(module, name)}


def fsdp_strategy(arch: str, **kwargs: Any) -> FSDPStrategy:
    """Lightning's FSDPStrategy wrapping each decoder layer of `arch` in its own FSDP unit."""
    layers = decoder_layer_classes(arch)
    return FSDPStrategy(auto_wrap_policy=layers, **kwargs)


def shard_with_fsdp2(model: nn.Module, mesh, reshard_after_forward: bool = True) -> None:
    """FSDP2 (`fully_shard`) per decoder layer, then the root: torchtitan's order, applied from outside."""
    from torch.distributed.fsdp import fully_shard

    layer_types = tuple(decoder_layer_classes(model.config.model_type))
    for module in model.modules():
        if isinstance(module, layer_types):
            fully_shard(module, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)


def check_multirun(is_multirun: bool, strategy: Any, devices: Any) -> None:
    """Hydra sweeps run jobs inside one process; a DDP launcher would re-run the whole sweep per rank.

    Under SLURM or torchrun the processes already exist (one per rank) and Lightning launches none.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if not is_multirun or SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return
    multi_device = devices not in (1, "1", None) and str(devices) != "[0]"
    subprocess_ddp = not isinstance(strategy, str) or strategy not in ("auto", "single_device")
    if multi_device and subprocess_ddp:
        raise UserError("a Hydra multirun (-m) with a multi-process strategy is not supported: each rank would "
                        "re-launch the sweep. Run the sweep with trainer.devices=1, or launch each job on its own "
                        "processes with hydra/launcher=slurm (one job per sweep point)")


def fsdp2_strategy(devices: int, num_nodes: int = 1, **kwargs: Any):
    """ModelParallelStrategy with every process in the data-parallel (FSDP2) dimension, no tensor parallel."""
    return ModelParallelStrategy(data_parallel_size=int(devices) * int(num_nodes), tensor_parallel_size=1, **kwargs)


def full_weights(trainer: L.Trainer, checkpoint_dir: Path) -> dict:
    """The whole model's state dict on rank 0 (call on every rank). FSDP and FSDP2 gather it; DeepSpeed ZeRO-3
    has no gather of its own, so its partitions are saved as a checkpoint (`final.ckpt/`) and consolidated."""
    strategy = trainer.strategy
    if not (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3):
        return strategy.lightning_module_state_dict()
    from lightning_llm.checkpoint_files import model_weights

    path = checkpoint_dir / "final.ckpt"
    trainer.save_checkpoint(path)
    strategy.barrier()
    return model_weights(path) if trainer.is_global_zero else {}


def full_model(trainer: L.Trainer, module: L.LightningModule, weights: dict) -> PreTrainedModel:
    """The trained `module.model` as one plain `transformers` model; a fresh copy holding `weights` (from
    `full_weights`) when the live one is sharded."""
    if not shards_parameters(trainer):
        return module.model
    return model_from_weights(module.model.config, weights)


def shards_parameters(trainer: L.Trainer) -> bool:
    """Whether a forward pass needs every process (FSDP, FSDP2, DeepSpeed ZeRO-3 gather parameters in it)."""
    strategy = trainer.strategy
    if isinstance(strategy, DeepSpeedStrategy):
        return strategy.zero_stage_3
    return isinstance(strategy, FSDPStrategy | ModelParallelStrategy)
