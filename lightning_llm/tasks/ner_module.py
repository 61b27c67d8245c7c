"""TokenClassificationModule: a token-classification head on a pretrained causal LM's backbone."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForTokenClassification
from transformers.utils import logging as hf_logging

from lightning_llm.config import from_dict
from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.models.pretrained import resolve_model
from lightning_llm.tasks.ner_metrics import EntityF1
from lightning_llm.training.optim import OptimConfig, build_optimizer, clips_under_amp
from lightning_llm.training.schedule import trainer_clock


class TokenClassificationModule(L.LightningModule):
    """Tags each word with `labels` (IOB2), starting from a causal-LM folder (the backbone's weights load;
    the head is new).

    Args:
        init_from: a causal LM: an HF folder (an llm-train export), a hub id, a .gguf file or a built-in name.
        labels: the tag of each class id (`NERDataModule.labels`).
        optim: AdamW and schedule, see `OptimConfig`.
        bidirectional: let every token attend to the whole sentence (the pretrained model only ever looked
            left; causal, the default, keeps it as trained).
    """

    def __init__(self, init_from: str, labels: list[str], optim: OptimConfig | dict | None = None,
                 bidirectional: bool = False, trust_remote_code: bool = False):
        super().__init__()
        self.optim_cfg = from_dict(OptimConfig, optim, "optim")
        self.save_hyperparameters({"init_from": str(init_from), "labels": list(labels),
                                   "optim": asdict(self.optim_cfg), "bidirectional": bidirectional,
                                   "trust_remote_code": trust_remote_code})
        folder = resolve_model(init_from)
        config = AutoConfig.from_pretrained(folder, num_labels=len(labels), trust_remote_code=trust_remote_code,
                                            id2label=dict(enumerate(labels)),
                                            label2id={t: i for i, t in enumerate(labels)})
        if bidirectional:
            config.is_causal = False  # transformers then builds a bidirectional mask
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report lists the new head as "MISSING": expected here
        try:
            self.model = AutoModelForTokenClassification.from_pretrained(
                folder, config=config, trust_remote_code=trust_remote_code, attn_implementation="sdpa")
        except ValueError as e:
            raise UserError(f"init_from={init_from}: transformers has no token-classification head for "
                            f"{config.model_type!r} ({str(e).splitlines()[0]})") from None
        finally:
            hf_logging.set_verbosity(verbosity)
        self.val_f1, self.test_f1 = EntityF1(list(labels)), EntityF1(list(labels))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 sync_dist=self.trainer.world_size > 1)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_f1, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_f1, "test")

    def _eval_step(self, batch: dict[str, torch.Tensor], metric: EntityF1, prefix: str) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        if (batch["labels"] != IGNORE).any():
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)
            self.log(f"{prefix}/loss", loss, sync_dist=True)
        metric.update_ids(logits, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val", self.val_f1)

    def on_test_epoch_end(self) -> None:
        self._log_f1("test", self.test_f1)

    def _log_f1(self, prefix: str, metric: EntityF1) -> None:
        self.log_dict({f"{prefix}/{k}": v for k, v in metric.compute().items()}, prog_bar=prefix == "val",
                      sync_dist=True)
        metric.reset()

    def configure_optimizers(self):
        return build_optimizer(self.model, self.optim_cfg, self.trainer.estimated_stepping_batches,
                               trainer_clock(self.trainer), clips_under_amp(self.trainer))
