"""Evaluation by generation: greedy answers to held-out prompts, scored against their references, plus the
baselines a fine-tuned score is read against (the model before fine-tuning, a trivial answerer)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from lightning_llm.data.chat import chat_prompt_text, end_of_turn_id
from lightning_llm.errors import UserError
from lightning_llm.tasks.formats import Example
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.training.tracking import logging_step

BASELINES = ("copy", "majority", "lead")


@torch.no_grad()
def answer(model, tokenizer, examples: list[Example], max_new_tokens: int = 48, batch_size: int = 32,
           context: int | None = None, lockstep: bool = False) -> list[str]:
    """Greedy answers of `model` to each example's prompt (its messages up to the last answer).

    Prompts are left-padded into batches; a prompt longer than `context - max_new_tokens` keeps its end.
    `lockstep`: every batch runs all `max_new_tokens` steps (processes of a sharded model must).
    """
    context = context or getattr(model.config, "max_position_embeddings", None) or 2048
    room = context - max_new_tokens
    if room < 1:
        raise UserError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {context}-token context")
    was_training = model.training
    model.eval()
    # a turn ends at the template's end-of-turn token (<|im_end|> in ChatML), or at EOS
    stops = list(dict.fromkeys(i for i in (end_of_turn_id(tokenizer), tokenizer.eos_token_id) if i is not None))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    outs = []
    for start in range(0, len(examples), batch_size):
        texts = [chat_prompt_text(e.prompt_messages, tokenizer) for e in examples[start:start + batch_size]]
        prompts = [tokenizer(t, add_special_tokens=False).input_ids[-room:] for t in texts]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        # logits_to_keep=1: the prompt pass keeps the last position's logits only, said here rather than left to
        # transformers' default; all of them are batch x prompt x vocab floats (32 x 317 x 49,152 for SmolLM2:
        # peak RSS 4.5 GB instead of 2.6)
        gen = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=-1 if lockstep else stops, pad_token_id=pad, logits_to_keep=1)[:, width:]
        for row in gen.tolist():
            cut = min((row.index(s) for s in stops if s in row), default=len(row))
            outs.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
    model.train(was_training)
    return outs


def baseline_answers(kind: str, examples: list[Example], train: list[Example]) -> list[str]:
    """copy: the source text itself (translation); majority: the most frequent train answer (QA); lead: the
    source's first words, as many as an average train answer has (summaries)."""
    if kind == "copy":
        return [e.source for e in examples]
    if kind == "majority":
        top = collections.Counter(e.response for e in train).most_common(1)[0][0]
        return [top] * len(examples)
    if kind == "lead":
        words = max(1, round(sum(len(e.response.split()) for e in train) / len(train)))
        return [" ".join(e.source.split()[:words]) for e in examples]
    raise UserError(f"finetune.eval.baseline={kind!r}: choose one of {list(BASELINES)} (or null)")


class GenerationEval(L.Callback):
    """At the end of every validation and test: answer the split's first `max_examples` prompts, log
    `<split>/<metric>`, keep a table of samples (W&B) and write `<run dir>/predictions_<split>.jsonl`."""

    def __init__(self, examples: dict[str, list[Example]], tokenizer, metrics: list[str], max_examples: int = 200,
                 max_new_tokens: int = 48, batch_size: int = 32, out_dir: str | Path | None = None,
                 samples_shown: int = 5):
        self.examples = {k: v[:max_examples] for k, v in examples.items()}
        self.tokenizer, self.metrics = tokenizer, list(metrics)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.out_dir = Path(out_dir) if out_dir else None
        self.samples_shown = samples_shown
        self.last: dict[str, dict[str, float]] = {}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._run("validation", "val", trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._run("test", "test", trainer, pl_module)

    def _run(self, split: str, prefix: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        examples = self.examples.get(split)
        if not self.metrics or not examples:
            return
        from lightning_llm.training.parallel import shards_parameters

        predictions = answer(pl_module.model, self.tokenizer, examples, self.max_new_tokens, self.batch_size,
                             lockstep=shards_parameters(trainer))
        scores = score(self.metrics, predictions, [e.references for e in examples])
        self.last[split] = scores
        # every process answered the same prompts greedily: the values agree, sync_dist only silences a warning
        pl_module.log_dict({f"{prefix}/{k}": v for k, v in scores.items()}, sync_dist=True)
        rows = [(chat_prompt_text(e.prompt_messages, self.tokenizer), " | ".join(e.references), p)
                for e, p in zip(examples, predictions, strict=True)]
        if trainer.is_global_zero:
            self._write(split, rows, trainer)

    def _write(self, split: str, rows: list[tuple[str, str, str]], trainer: L.Trainer) -> None:
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / f"predictions_{split}.jsonl", "w", encoding="utf-8") as f:
                for prompt, ref, pred in rows:
                    f.write(json.dumps({"input": prompt, "reference": ref, "prediction": pred}, ensure_ascii=False)
                            + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # at Lightning's logging step: a later step would make W&B drop this validation's metrics
                logger.log_table(key=f"{split}/samples", columns=["input", "reference", "prediction"],
                                 data=[list(r) for r in rows[:50]], step=logging_step(trainer))
