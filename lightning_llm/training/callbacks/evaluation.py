"""Downstream quality while pretraining: multiple-choice tasks and generated samples at an interval.

Under a strategy that shards the parameters (FSDP, FSDP2, ZeRO-3) every forward pass is a collective, so
every process runs them, in lockstep; otherwise rank 0 alone does. Rank 0 prints and logs, at the step
Lightning logs the same batch's training metrics.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
from lightning_llm.inference.generation import generate
from lightning_llm.training.parallel import shards_parameters
from lightning_llm.training.tracking import logging_step


def _due(trainer: L.Trainer, every_n_steps: int, last: int | None) -> bool:
    """Every `every_n_steps` optimizer steps, once (accumulated micro-batches share a step); 0 = never."""
    step = trainer.global_step
    return every_n_steps > 0 and step > 0 and step % every_n_steps == 0 and step != last and (trainer.is_global_zero
                                                                         or shards_parameters(trainer))


class TaskEval(L.Callback):
    """Logs `eval/<task>/acc` and `eval/<task>/acc_norm` every `every_n_steps` optimizer steps."""

    def __init__(self, tokenizer, tasks: list[str], every_n_steps: int, num_fewshot: int = 0,
                 limit: int | None = None):
        self.tokenizer, self.every_n_steps = tokenizer, every_n_steps
        self.tasks = {Path(t).stem: load_task(t) for t in tasks}  # bad files fail before training starts
        self.num_fewshot, self.limit = num_fewshot, limit
        self._last: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.tasks or not _due(trainer, self.every_n_steps, self._last):
            return
        self._last = trainer.global_step
        values = {}
        for name, questions in self.tasks.items():
            result = evaluate_task(pl_module.model, self.tokenizer, questions, self.num_fewshot, limit=self.limit)
            values |= {f"eval/{name}/acc": result["acc"], f"eval/{name}/acc_norm": result["acc_norm"]}
        pl_module.model.train()
        if trainer.is_global_zero:
            for logger in trainer.loggers:  # straight to the loggers: once, at this batch's step
                logger.log_metrics(values, step=logging_step(trainer))


class TextSamples(L.Callback):
    """Continues fixed prompts every `every_n_steps` steps: printed, and a W&B table when W&B logs."""

    def __init__(self, tokenizer, prompts: list[str], every_n_steps: int, max_new_tokens: int = 48,
                 temperature: float = 0.8, top_k: int | None = 50, seed: int = 0):
        self.tokenizer, self.prompts, self.every_n_steps = tokenizer, prompts, every_n_steps
        self.kwargs = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "seed": seed}
        self.rows: list[list] = []
        self._last: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.prompts or not _due(trainer, self.every_n_steps, self._last):
            return
        step = self._last = trainer.global_step
        texts = generate(pl_module.model, self.tokenizer, self.prompts, lockstep=shards_parameters(trainer),
                         **self.kwargs)
        pl_module.model.train()
        if not trainer.is_global_zero:
            return
        self.rows += [[step, p, t] for p, t in zip(self.prompts, texts, strict=True)]
        pl_module.print(f"\n[samples at step {step}]\n" + "\n".join(f"--- {t}" for t in texts))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                table = wandb.Table(columns=["step", "prompt", "text"], data=self.rows)
                logger.experiment.log({"samples": table}, step=logging_step(trainer))
