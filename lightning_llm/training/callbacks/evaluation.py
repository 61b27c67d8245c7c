"""Downstream quality while pretraining: multiple-choice tasks and generated samples at an interval."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
from lightning_llm.inference.generation import generate


class TaskEval(L.Callback):
    """Logs `eval/<task>/acc` and `eval/<task>/acc_norm` every `every_n_steps` optimizer steps (rank 0)."""

    def __init__(self, tokenizer, tasks: list[str], every_n_steps: int, num_fewshot: int = 0,
                 limit: int | None = None):
        self.tokenizer, self.every_n_steps = tokenizer, every_n_steps
        self.tasks = {Path(t).stem: load_task(t) for t in tasks}  # bad files fail before training starts
        self.num_fewshot, self.limit = num_fewshot, limit

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.tasks or step % self.every_n_steps or getattr(self, "_last", None) == step:
            return
        self._last = step
        for name, questions in self.tasks.items():
            result = evaluate_task(pl_module.model, self.tokenizer, questions, self.num_fewshot, limit=self.limit)
            values = {f"eval/{name}/acc": result["acc"], f"eval/{name}/acc_norm": result["acc_norm"]}
            for logger in trainer.loggers:  # straight to the loggers: once, at this step
                logger.log_metrics(values, step=step)
        pl_module.model.train()


class TextSamples(L.Callback):
    """Continues fixed prompts every `every_n_steps` steps: printed, and a W&B table when W&B logs."""

    def __init__(self, tokenizer, prompts: list[str], every_n_steps: int, max_new_tokens: int = 48,
                 temperature: float = 0.8, top_k: int | None = 50, seed: int = 0):
        self.tokenizer, self.prompts, self.every_n_steps = tokenizer, prompts, every_n_steps
        self.kwargs = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "seed": seed}
        self.rows: list[list] = []

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.prompts or step % self.every_n_steps or (self.rows and self.rows[-1][0] == step):
            return
        texts = generate(pl_module.model, self.tokenizer, self.prompts, **self.kwargs)
        pl_module.model.train()
        self.rows += [[step, p, t] for p, t in zip(self.prompts, texts, strict=True)]
        pl_module.print(f"\n[samples at step {step}]\n" + "\n".join(f"--- {t}" for t in texts))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                table = wandb.Table(columns=["step", "prompt", "text"], data=self.rows)
                logger.experiment.log({"samples": table}, step=step)
