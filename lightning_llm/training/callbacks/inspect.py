"""The inspection views for a fixed prompt while training: the surprisal page, the last layer's attention
maps and the logit lens, every `every_n_steps` steps, into the run dir and, when W&B logs, into the run."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from lightning_llm.training.parallel import shards_parameters
from lightning_llm.training.tracking import logging_step

log = logging.getLogger(__name__)


class InspectViews(L.Callback):
    """Rank 0 writes `<out_dir>/step-<N>/` (surprisal.html, attention.html, logit_lens.html, the last layer's
    attention PNG, the logit lens PNG) and logs `inspect/surprisal`, `inspect/attention_page`,
    `inspect/logit_lens_page` (wandb.Html) and `inspect/attention`, `inspect/logit_lens` (images). Off under a
    strategy that shards the parameters (rank 0 cannot run the model alone there)."""

    def __init__(self, tokenizer, prompt: str, every_n_steps: int, out_dir: str | Path):
        self.tokenizer, self.prompt, self.every_n_steps, self.out_dir = tokenizer, prompt, every_n_steps, Path(out_dir)
        self._last: int | None = None
        self.written: list[Path] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        if self.every_n_steps and shards_parameters(trainer):
            log.warning("inspect.every_n_steps is off under a sharded strategy: run llm-inspect on a checkpoint")
            self.every_n_steps = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if (not self.every_n_steps or not trainer.is_global_zero or step == 0 or step % self.every_n_steps
                or step == self._last):
            return
        from lightning_llm.evaluation.inspect import inspect_text

        self._last = step
        model = pl_module.model
        model.eval()
        try:
            layer = model.config.num_hidden_layers - 1
            written = inspect_text(model, self.tokenizer, self.prompt, self.out_dir / f"step-{step:07d}",
                                   title=f"Surprisal at step {step}", layers=[layer])
        finally:
            model.train()
        self.written.append(written["surprisal"].parent)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({
                    "inspect/surprisal": wandb.Html(written["surprisal"].read_text(encoding="utf-8")),
                    "inspect/attention_page": wandb.Html(written["attention_page"].read_text(encoding="utf-8")),
                    "inspect/logit_lens_page": wandb.Html(written["logit_lens_page"].read_text(encoding="utf-8")),
                    "inspect/attention": wandb.Image(str(written[f"attention_layer_{layer:02d}"])),
                    "inspect/logit_lens": wandb.Image(str(written["logit_lens"])),
                }, step=logging_step(trainer))
