"""Loss curves for users without a dashboard: train/val loss against step, saved as a PNG."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from lightning_llm.training.tracking import AppendingCSVLogger


class LossCurves(L.Callback):
    """Records `train/loss` every optimizer step and `val/loss` at each validation; writes `path` when fit ends.

    The points travel in checkpoints, so the curves of a resumed run start at step 0, not at the resume.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step  # the optimizer step just taken (logged loss: its micro-batches' mean)
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None and (not self.train or self.train[-1][0] != step):
            self.train.append((step, float(loss)))

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val/loss" in trainer.callback_metrics:
            self.val.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        # the loss of optimizer step k is logged at Lightning's step k - 1
        for logger in trainer.loggers:
            if isinstance(logger, AppendingCSVLogger) and self.train:
                logger.fill_missing("train/loss", [(step - 1, loss) for step, loss in self.train])

    def state_dict(self) -> dict:
        return {"train": [list(p) for p in self.train], "val": [list(p) for p in self.val]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train = [tuple(p) for p in state_dict.get("train", [])]
        self.val = [tuple(p) for p in state_dict.get("val", [])]

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self.save()

    def save(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
        if self.train:
            ax.plot(*zip(*self.train, strict=True), label="train/loss", linewidth=0.8, alpha=0.8)
        if self.val:
            ax.plot(*zip(*self.val, strict=True), "o-", label="val/loss")
        ax.set(xlabel="step", ylabel="loss (nats/token)", title="Training curves")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(self.path)
