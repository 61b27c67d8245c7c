"""The fine-tuning methods `llm-train task=<name>` knows (the recipes set `task`)."""

from __future__ import annotations

from lightning_llm.errors import UserError
from lightning_llm.tasks.dpo_task import DPOTask
from lightning_llm.tasks.ner_task import NERTask
from lightning_llm.tasks.sft_task import SFTTask
from lightning_llm.tasks.task import FinetuneTask

TASKS: dict[str, FinetuneTask] = {t.name: t for t in (SFTTask(), NERTask(), DPOTask())}


def get_task(name: str) -> FinetuneTask:
    if name not in TASKS:
        raise UserError(f"task={name!r}: choose one of {['pretrain', *TASKS]}")
    return TASKS[name]
