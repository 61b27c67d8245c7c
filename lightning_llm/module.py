"""CausalLMModule: a `transformers` causal LM trained and evaluated as a LightningModule."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from lightning_llm.data.config import from_dict
from lightning_llm.metrics import LanguageModelMetrics
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.optim import OptimConfig, build_optimizer


class CausalLMModule(L.LightningModule):
    """Builds the model from its config (stored in the checkpoint, so `load_from_checkpoint` rebuilds it).

    Args:
        vocab_size: the tokenizer's size; the model's embedding follows it.
        arch: a `transformers` model type (llama, gpt2, qwen2, mistral, ...).
        config: that architecture's config fields (hidden_size, num_hidden_layers, ...).
        init: weight-init scheme, see `InitConfig`.
        optim: AdamW and schedule, see `OptimConfig`.
        eos_token_id: written into the model config so exports generate and stop correctly.
    """

    def __init__(self, vocab_size: int, arch: str = "llama", config: dict[str, Any] | None = None,
                 init: InitConfig | dict | None = None, optim: OptimConfig | dict | None = None,
                 eos_token_id: int | None = None):
        super().__init__()
        self.init_cfg = from_dict(InitConfig, init, "model.init")
        self.optim_cfg = from_dict(OptimConfig, optim, "optim")
        self.save_hyperparameters({"vocab_size": vocab_size, "arch": arch, "config": dict(config or {}),
                                   "init": asdict(self.init_cfg), "optim": asdict(self.optim_cfg),
                                   "eos_token_id": eos_token_id})
        hf_config = model_config(arch, dict(config or {}), vocab_size, eos_token_id)
        self.model = build_causal_lm(hf_config, self.init_cfg)
        self.val_metrics = LanguageModelMetrics()
        self.test_metrics = LanguageModelMetrics()
        self.tokens_seen = 0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits

    def token_nats(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["input_ids"])
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), reduction="none")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.token_nats(batch).mean()
        self.tokens_seen += batch["input_ids"].numel()
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_metrics.update(self.token_nats(batch), batch.get("label_bytes"))

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.test_metrics.update(self.token_nats(batch), batch.get("label_bytes"))

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def _log_metrics(self, prefix: str, metrics: LanguageModelMetrics) -> None:
        values = metrics.compute()
        self.log_dict({f"{prefix}/{k}": v for k, v in values.items()}, prog_bar=prefix == "val", sync_dist=False)
        metrics.reset()

    def configure_optimizers(self):
        return build_optimizer(self.model, self.optim_cfg, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.tokens_seen = checkpoint.get("tokens_seen", 0)
