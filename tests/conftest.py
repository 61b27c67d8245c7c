"""Shared fixtures: a small corpus made here, and caches kept inside the test's temp folders."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="lightning_llm-tests-"))
# Before datasets/wandb are imported: never touch the user's caches or the network.
os.environ.update(LIGHTNING_LLM_CACHE=str(_TMP / "cache"), HF_DATASETS_CACHE=str(_TMP / "hf-datasets"),
                  WANDB_MODE="offline", WANDB_SILENT="true", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

WORDS = [
    "to", "of", "that", "have", "be", "the", "king", "queen", "lord", "lady", "good", "night", "day", "love",
    "death", "sword", "crown",
    "heart", "fair", "sweet", "noble", "speak", "come", "go", "hear", "see", "know", "make", "take", "give",
    "tell", "thou", "thee", "thy", "my", "your", "our", "and", "but", "or", "if", "with", "upon", "against",
    "before", "after", "never", "ever", "still", "yet", "now", "here", "there", "where", "when", "why", "how"
]


def make_document(rng: random.Random, sentences: int = 30) -> str:
    lines = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        lines.append(" ".join(words).capitalize() + rng.choice(".!?;,"))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """24 plain-text documents, one per file."""
    folder = _TMP / "corpus"
    if not folder.exists():
        folder.mkdir(parents=True)
        rng = random.Random(0)
        for i in range(24):
            (folder / f"doc{i:02d}.txt").write_text(make_document(rng))
    return folder


@pytest.fixture
def data_cfg(corpus_dir: Path) -> dict:
    """A DataConfig (as a dict) over the test corpus: tiny sequences and batches."""
    return {"data_files": {"train": str(corpus_dir / "*.txt")}, "seq_len": 32, "batch_size": 4,
            "split": {"validation": 0.1, "test": 0.1, "seed": 0}}


@pytest.fixture
def tok_cfg() -> dict:
    return {"vocab_size": 300}


TINY_MODEL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 4, "max_position_embeddings": 64}


@pytest.fixture(scope="session")
def tiny_export(corpus_dir: Path) -> Path:
    """A tiny Llama and its BPE exported as an HF folder: the model fine-tuning tests start from."""
    folder = _TMP / "tiny-export"
    if not folder.exists():
        from lightning_llm.data.tokenizer import train_bpe
        from lightning_llm.export import export_hf
        from lightning_llm.models import InitConfig, build_causal_lm, model_config

        texts = [p.read_text() for p in sorted(corpus_dir.glob("*.txt"))]
        texts.append("User: Assistant: System: Question: Who says Translate to es: Summarize: \n" * 20)
        tok = train_bpe(texts, vocab_size=400)
        cfg = model_config("llama", {**TINY_MODEL, "max_position_embeddings": 128}, len(tok), tok.eos_token_id)
        export_hf(build_causal_lm(cfg, InitConfig()), tok, folder, max_length=128)
    return folder
