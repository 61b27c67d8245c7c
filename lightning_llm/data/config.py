"""Typed configs of the data stages; Hydra's `data` and `tokenizer` groups map onto them one to one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning_llm.data.cleaning.config import CleaningConfig

SPLITS = ("train", "validation", "test")
IGNORE = -100  # a label that is not predicted (padding rows, prompts in fine-tuning): no loss, not counted


@dataclass
class SplitConfig:
    """How validation/test are cut from train when the source does not provide them."""

    validation: float = 0.05
    test: float = 0.05
    seed: int = 1234
    group_by: str | None = None  # a column: documents sharing its value stay in one split


@dataclass
class DataConfig:
    """Where the documents come from and how they are batched.

    Precedence of sources: `mixture` (several sources by weight, see `data.mixture`), then `data_files` (local
    files per split), then `path` (a `datasets` hub name or local dataset folder), then `corpus` (a built-in corpus).
    """

    corpus: str | None = "shakespeare"
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    data_files: dict[str, Any] | None = None
    text_column: str = "text"
    max_files: int | None = None  # the first N files (by name) of the built-in corpus or of data_files.train
    mixture: dict[str, Any] | None = None  # {name: {weight, corpus|path|data_files, cleaning}}: data/mixture.py
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    seq_len: int = 256
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 0
    num_proc: int | None = None  # worker processes of the cleaning stages
    shard_size: int = 65536  # sequences per shard file
    prepare_timeout_s: float = 86400  # how long a process waits for another one preparing the same data
    verify: bool = False  # when reusing prepared data, also check each shard's sha256 (sizes are always checked)
    document_mask: bool = False  # position ids that restart at every EOS: a packed document attends only to itself

    def __post_init__(self) -> None:
        # Hydra configs list every split with null so `data.data_files.train=...` needs no `+`.
        files = {k: v for k, v in (self.data_files or {}).items() if v}
        self.data_files = files or None


@dataclass
class TokenizerConfig:
    """Train a byte-level BPE on the train split, or load any Hugging Face tokenizer by `path`."""

    path: str | None = None
    vocab_size: int = 4096
    min_frequency: int = 2
    eos_token: str = "<|endoftext|>"
    trust_remote_code: bool = False
