"""Typed configs of the fine-tuning tasks; `data=sft` / `data=ner` and the `finetune` keys map onto them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FORMATS = ("prompt_response", "messages", "alpaca", "squad", "translation", "pair", "lines")


def given_files(data_files: dict[str, Any] | None) -> dict[str, Any] | None:
    """Hydra configs list every split with null so `data.data_files.train=...` needs no `+`: keep the given ones."""
    return {k: v for k, v in (data_files or {}).items() if v} or None


@dataclass
class TaskSplitConfig:
    """How validation/test are cut from train when the source does not provide them."""

    validation: float = 0.05
    test: float = 0.05
    seed: int = 1234


@dataclass
class SFTDataConfig:
    """Instruction data: where examples come from, their format, and how they become batches.

    Sources, by precedence: `data_files` (local files per split), `path` (a `datasets` hub name), `source`
    (a built-in task dataset, see `lightning_llm.tasks.sources`).
    """

    format: str = "prompt_response"
    source: str | None = None
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    data_files: dict[str, Any] | None = None
    column_map: dict[str, str] | None = None  # our field -> the data's column, e.g. {prompt: question}
    source_lang: str = "en"  # translation: keys of the `translation` dict
    target_lang: str = "es"
    template: str | None = None  # the user turn, with {fields} of the record; None: the format's default
    system: str | None = None  # a system turn before every example
    train_on_prompt: bool = False  # also learn the prompt tokens (default: the response tokens only)
    pack: bool = True  # several examples per row, each with its own positions and no attention across
    seq_len: int = 256
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 0
    max_examples: dict[str, int] | None = None  # cap per split, e.g. {train: 20000}
    split: TaskSplitConfig = field(default_factory=TaskSplitConfig)

    def __post_init__(self) -> None:
        self.data_files = given_files(self.data_files)


@dataclass
class NERDataConfig:
    """Token-classification data: CoNLL column files or JSONL `tokens`/`ner_tags`."""

    format: str = "conll"  # conll | jsonl
    source: str | None = None
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    data_files: dict[str, Any] | None = None
    token_column: int = 0  # CoNLL: the word's column
    tag_column: int = -1  # CoNLL: the tag's column
    scheme: str = "iob2"  # iob2 | iob1 (converted to IOB2)
    label_names: list[str] | None = None  # JSONL with integer ner_tags: the name of each id
    seq_len: int = 256
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 0
    max_examples: dict[str, int] | None = None
    split: TaskSplitConfig = field(default_factory=TaskSplitConfig)

    def __post_init__(self) -> None:
        self.data_files = given_files(self.data_files)


@dataclass
class LoraConfig:
    """Low-rank adapters (through `peft`); `r: 0` means full fine-tuning."""

    r: int = 0
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


@dataclass
class GenEvalConfig:
    """Evaluation by generation on validation and test: which metrics, on how many examples."""

    metrics: list[str] = field(default_factory=list)  # squad | bleu | chrf | rouge
    max_examples: int = 200  # per split (the first N, the same every time)
    max_new_tokens: int = 48
    batch_size: int = 32
    baseline: str | None = None  # the trivial baseline: copy | majority | lead
    samples_shown: int = 5


@dataclass
class PreferenceDataConfig:
    """Preference pairs (recipe=dpo): `{"prompt", "chosen", "rejected"}` or `{"chosen", "rejected"}` records.

    Sources, by precedence: `data_files` (local JSONL/JSON/Parquet per split), `path` (a `datasets` hub name),
    `source` (built-in pairs, see `lightning_llm.tasks.sources`).
    """

    format: str = "preference"
    source: str | None = None
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    data_files: dict[str, Any] | None = None
    system: str | None = None  # a system turn before every prompt that has none
    pack: bool = True  # a batch's sequences packed into rows, each attending only to itself
    seq_len: int = 512  # tokens of one sequence (prompt + completion) at most, and of a packed row
    batch_size: int = 8  # pairs per batch
    eval_batch_size: int | None = None
    num_workers: int = 0
    max_examples: dict[str, int] | None = None  # pairs per split at most, e.g. {train: 5000}
    split: TaskSplitConfig = field(default_factory=TaskSplitConfig)

    def __post_init__(self) -> None:
        self.data_files = given_files(self.data_files)


LOSSES = ("sigmoid", "ipo", "hinge", "robust", "simpo", "orpo")


@dataclass
class DPOConfig:
    """`dpo.*`: the preference loss and its reference."""

    loss: str = "sigmoid"  # sigmoid (DPO) | ipo | hinge | robust | simpo | orpo (the last two need no reference)
    beta: float = 0.1  # DPO's temperature; SimPO's reward scale; ORPO: unused (see orpo_weight)
    label_smoothing: float = 0.0  # sigmoid and robust: the assumed share of flipped labels (cDPO / rDPO)
    gamma: float = 0.5  # simpo: the target reward margin
    orpo_weight: float = 0.1  # orpo: weight of the odds-ratio term beside the chosen completion's SFT loss
    sft_weight: float = 0.0  # sigmoid/ipo/hinge/robust/simpo: + this x the chosen completion's mean token NLL (RPO)
    precompute_reference: bool = False  # reference log-probs in one pass before training, cached on disk

    def __post_init__(self) -> None:
        from lightning_llm.errors import UserError

        if self.loss not in LOSSES:
            raise UserError(f"dpo.loss={self.loss!r}: choose one of {list(LOSSES)}")
        if not 0 <= self.label_smoothing < 0.5:
            raise UserError(f"dpo.label_smoothing={self.label_smoothing}: give a share in [0, 0.5)")
        if self.sft_weight < 0:
            raise UserError(f"dpo.sft_weight={self.sft_weight}: give 0 (none) or a positive weight")
        if self.sft_weight and self.loss == "orpo":
            raise UserError("dpo.sft_weight: orpo has its own SFT term (weight 1, odds ratio dpo.orpo_weight); drop "
                            "dpo.sft_weight")
        if self.beta <= 0:
            raise UserError(f"dpo.beta={self.beta}: give a positive number (0.1 is DPO's usual)")

    @property
    def needs_reference(self) -> bool:
        return self.loss not in ("simpo", "orpo")
