"""The progress bar of a run bounded by steps: Lightning's rich bar, without "Epoch 3/-2", drawn at most a few
times a second (a redraw every step cost a few ms a step at small shapes; throttled, the bar costs ~0.07 ms a step:
benchmarks/step_overhead)."""

from __future__ import annotations

import time
from datetime import timedelta

from lightning.pytorch.callbacks import RichProgressBar

from lightning_llm.training.schedule import trainer_clock


class StepProgressBar(RichProgressBar):
    """Epochs are passes over the data; a run whose end is `trainer.max_steps` (max_epochs=-1) says so.

    Args:
        min_interval_s: the least time between two redraws of the training bar.
    """

    def __init__(self, min_interval_s: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.min_interval_s = min_interval_s
        self._drawn = 0.0

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        clock = trainer_clock(trainer)
        if clock is not None:  # trainer.max_time
            budget = timedelta(seconds=round(clock()[1]))
            return f"Epoch {current_epoch} (to {budget} of training" + (
                f" or step {trainer.max_steps})" if trainer.max_steps > 0 else ")")
        if trainer.max_epochs in (None, -1) and trainer.max_steps > 0:
            return f"Epoch {current_epoch} (to step {trainer.max_steps})"
        return super()._get_train_description(current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        last = batch_idx + 1 == self.total_train_batches or trainer.global_step >= trainer.max_steps > 0
        if now - self._drawn < self.min_interval_s and not last:
            return
        self._drawn = now
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
