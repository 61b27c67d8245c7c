"""The progress bar of a run bounded by steps: Lightning's rich bar, without "Epoch 3/-2"."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Epochs are passes over the data; a run whose end is `trainer.max_steps` (max_epochs=-1) says so."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs in (None, -1) and trainer.max_steps > 0:
            return f"Epoch {current_epoch} (to step {trainer.max_steps})"
        return super()._get_train_description(current_epoch)
