"""Zero/few-shot multiple choice by log-likelihood, scored the way lm-evaluation-harness scores
HellaSwag/ARC-style tasks: `acc` picks the choice with the highest summed log-probability given the
context, `acc_norm` the highest log-probability per character of the choice (as the harness divides by
`len(choice)`; for ASCII text characters and bytes are the same).

A task file is JSONL, one question a line: {"context": str, "choices": [str, ...], "label": int}.
Few-shot examples are other questions of the same file (seeded), written as context + correct choice.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_llm.errors import UserError


@dataclass
class Question:
    context: str
    choices: list[str]
    label: int


def load_task(path: str | Path) -> list[Question]:
    """Read a task file; a bad line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"task file {path} does not exist")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            q = Question(str(record["context"]), [str(c) for c in record["choices"]], int(record["label"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}:{number}: not a task line ({type(e).__name__}: {e}); expected "
                            '{"context": str, "choices": [str, ...], "label": int}') from e
        if not 0 <= q.label < len(q.choices) or len(q.choices) < 2:
            raise UserError(f"{path}:{number}: label {q.label} does not index {len(q.choices)} choices (need >= 2)")
        questions.append(q)
    if not questions:
        raise UserError(f"task file {path} holds no questions")
    return questions


@torch.no_grad()
def evaluate_task(model, tokenizer, questions: list[Question], num_fewshot: int = 0, seed: int = 1234,
                  limit: int | None = None) -> dict[str, float]:
    """Accuracy (`acc`) and length-normalized accuracy (`acc_norm`, per character) over the questions."""
    rng = random.Random(seed)
    model.eval()
    max_len = getattr(model.config, "max_position_embeddings", None)
    correct = correct_norm = 0
    scored = questions[:limit] if limit else questions
    for i, q in enumerate(scored):
        shots = rng.sample([x for j, x in enumerate(questions) if j != i], min(num_fewshot, len(questions) - 1))
        prefix = "".join(f"{s.context}{s.choices[s.label]}\n\n" for s in shots)
        logprobs = [_continuation_logprob(model, tokenizer, prefix + q.context, c, max_len) for c in q.choices]
        norm = [lp / max(1, len(c)) for lp, c in zip(logprobs, q.choices, strict=True)]
        correct += int(max(range(len(logprobs)), key=logprobs.__getitem__) == q.label)
        correct_norm += int(max(range(len(norm)), key=norm.__getitem__) == q.label)
    return {"acc": correct / len(scored), "acc_norm": correct_norm / len(scored), "n": len(scored)}


def _continuation_logprob(model, tokenizer, context: str, continuation: str, max_len: int | None) -> float:
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    cont = tokenizer(continuation, add_special_tokens=False).input_ids
    if not cont:
        return float("-inf")
    ids = (ctx + cont)[-(max_len + 1):] if max_len else ctx + cont  # keep the continuation, cut old context
    if len(ids) <= len(cont):
        raise UserError(f"a choice of {len(cont)} tokens does not fit the model's context of {max_len}")
    input_ids = torch.tensor([ids[:-1]], device=model.device)
    logits = model(input_ids=input_ids).logits[0, -len(cont):].float()
    return float(F.log_softmax(logits, dim=-1).gather(1, torch.tensor(cont, device=model.device)[:, None]).sum())
