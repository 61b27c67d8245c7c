"""Training: the LightningModules (`CausalLMModule`, `DistillationModule`), optimizer and schedules,
precision, distributed strategies, checkpoint/resume support, W&B tracking and callbacks."""

from lightning_llm.training.distillation import DistillationModule
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.optim import OptimConfig

__all__ = ["CausalLMModule", "DistillationModule", "OptimConfig"]
