"""SFTModule: fine-tune a pretrained causal LM on response tokens (full or LoRA)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from lightning_llm.config import from_dict
from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.models.pretrained import load_causal_lm
from lightning_llm.tasks.config import LoraConfig
from lightning_llm.tasks.lora import add_lora, merged
from lightning_llm.training.module import NONFINITE, CausalLMModule
from lightning_llm.training.optim import OptimConfig


class SFTModule(CausalLMModule):
    """A `CausalLMModule` that starts from a trained model folder and learns only the labelled tokens.

    The training loss is the mean over every labelled token of the optimizer step: each micro-batch's sum of
    nats is divided by the step's label-token count (all processes and accumulated micro-batches, sent by
    `StepTokenSampler` as `step_tokens`), so accumulation and data parallelism leave it unchanged.

    Args:
        init_from: a causal LM: an HF folder (an llm-train export), a hub id, a .gguf file or a built-in name.
        optim: AdamW and schedule, see `OptimConfig`.
        lora: low-rank adapters, see `LoraConfig` (`r: 0`, the default, fine-tunes every weight).
        compile, activation_checkpointing, on_nonfinite_loss: as in `CausalLMModule`.
    """

    def __init__(self, init_from: str, optim: OptimConfig | dict | None = None, lora: LoraConfig | dict | None = None,
                 compile: bool = False, activation_checkpointing: bool = False, on_nonfinite_loss: str = "stop",
                 trust_remote_code: bool = False):
        super(CausalLMModule, self).__init__()
        if on_nonfinite_loss not in NONFINITE:
            raise UserError(f"on_nonfinite_loss={on_nonfinite_loss!r}: choose one of {list(NONFINITE)}")
        self.optim_cfg = from_dict(OptimConfig, optim, "optim")
        self.lora_cfg = from_dict(LoraConfig, lora, "lora")
        self.save_hyperparameters({"init_from": str(init_from), "optim": asdict(self.optim_cfg),
                                   "lora": asdict(self.lora_cfg), "compile": compile,
                                   "activation_checkpointing": activation_checkpointing,
                                   "on_nonfinite_loss": on_nonfinite_loss, "trust_remote_code": trust_remote_code})
        self.model = add_lora(load_causal_lm(init_from, trust_remote_code), self.lora_cfg)
        self._init_state()

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nats = self.nats_sum(batch)
        if "step_tokens" not in batch:  # a batch from elsewhere: the mean over its own labels
            return nats / (batch["labels"] != IGNORE).sum().clamp(min=1), {}
        # Lightning divides by the accumulation and DDP averages over processes: undo both, so the gradient is
        # that of (sum of the step's nats) / (the step's label tokens).
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size
        return nats * scale / batch["step_tokens"][0].clamp(min=1), {}

    def merged_model(self):
        """The model to export: LoRA adapters merged into the weights."""
        return merged(self.model)
