"""Loss curves for users without a dashboard: train/val loss against step, saved as a PNG."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


class LossCurves(L.Callback):
    """Records `train/loss` every step and `val/loss` at each validation; writes `path` when fit ends."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.train.append((trainer.global_step, float(loss)))

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val/loss" in trainer.callback_metrics:
            self.val.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))

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
