"""Per-source figures of a data mixture: tokens each source gave to training, and each source's validation/test
loss, perplexity and bits per byte (`val/<source>/bpb`, beside the mixture's overall `val/bpb`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from lightning_llm.evaluation.metrics import LanguageModelMetrics


class MixtureMetrics(L.Callback):
    """Logs `data/<source>/tokens` and `data/<source>/share` (of the rows drawn so far) while training, and
    `val/<source>/{loss,ppl,bpb}` (`test/...`) after each evaluation, for a `PretrainDataModule` whose data is a
    mixture (`data.mixture`); does nothing otherwise.

    Tokens are counted (each batch, a few microseconds) from the sampler's draw, which is a function of the global
    batch index: exact across processes and resumes without any collective. The evaluation figures use the
    per-token losses the module's `validation_step` / `test_step` return.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._metrics: dict[str, list[LanguageModelMetrics]] = {}
        self._rows = np.zeros(0, dtype=np.int64)
        self._counted = 0  # global rows counted into _rows
        self._sampler = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        self.names = list(getattr(datamodule, "source_names", None) or [])
        if not self.names:
            return
        self._metrics = {prefix: [LanguageModelMetrics() for _ in self.names] for prefix in ("val", "test")}
        self._rows, self._counted, self._sampler = np.zeros(len(self.names), dtype=np.int64), 0, None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.names:
            return
        if self._sampler is None:  # the draw is a function of the global row: one sampler answers for the run
            self._sampler = trainer.datamodule.train_sampler()
        sampler = self._sampler
        rows = trainer.datamodule.batches_consumed * sampler.global_batch
        if rows < self._counted:  # a resume behind what was counted: count again from the start
            self._rows[:], self._counted = 0, 0
        self._rows += sampler.counts(self._counted, rows)
        self._counted = rows
        seq_len = batch["input_ids"].shape[1]
        for name, n in zip(self.names, self._rows.tolist(), strict=True):
            pl_module.log(f"data/{name}/tokens", float(n * seq_len), on_step=True, on_epoch=False)
            pl_module.log(f"data/{name}/share", n / max(1, rows), on_step=True, on_epoch=False)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        self._update("val", pl_module, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        self._update("test", pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        self._log("val", pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        self._log("test", pl_module)

    def _update(self, prefix: str, pl_module, outputs, batch) -> None:
        if not self.names or trainer_sanity_checking(pl_module):
            return
        if not isinstance(outputs, torch.Tensor) or "source" not in batch:
            raise RuntimeError("MixtureMetrics needs a module whose validation_step/test_step return the per-token "
                               "nats (CausalLMModule does) and batches with `source` (a mixture's PretrainDataModule)")
        nats = outputs.view(batch["labels"].shape)
        for index, metric in enumerate(self._metrics[prefix]):
            mine = batch["source"] == index
            if mine.any():
                metric.to(pl_module.device)
                metric.update(nats[mine], batch["label_bytes"][mine], batch["labels"][mine])

    def _log(self, prefix: str, pl_module) -> None:
        if not self.names or trainer_sanity_checking(pl_module):
            return
        values = {}
        strategy = pl_module.trainer.strategy
        for name, metric in zip(self.names, self._metrics[prefix], strict=True):
            metric.to(pl_module.device)
            # a source the evaluation did not reach (limit_val_batches) has no figure rather than a loss of 0
            if strategy.reduce(metric.tokens.clone(), reduce_op="sum") > 0:
                values.update({f"{prefix}/{name}/{k}": v for k, v in metric.compute().items()})  # across ranks
            metric.reset()
        pl_module.log_dict(values, sync_dist=True)


def trainer_sanity_checking(pl_module) -> bool:
    return pl_module._trainer is not None and pl_module.trainer.sanity_checking
