"""Tokenizers: train a byte-level BPE with `tokenizers`, or load any Hugging Face tokenizer.

Either way the result is a `transformers` fast tokenizer that `AutoTokenizer.from_pretrained` reloads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from lightning_llm.errors import UserError


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              eos_token: str = "<|endoftext|>", length: int | None = None) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE (no unknown tokens: every byte is in the alphabet)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[eos_token],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos_token, bos_token=eos_token,
                                   pad_token=eos_token)


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load a tokenizer folder or hub name; it must be a fast tokenizer with an EOS token."""
    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise UserError(f"could not load tokenizer.path={str(path)!r}: {str(e).splitlines()[0]}; give a "
                        "Hugging Face tokenizer folder or hub name") from e
    if not tok.is_fast:
        raise UserError(f"tokenizer {path} is not a fast (Rust `tokenizers`) tokenizer; use one that is")
    if tok.eos_token_id is None:
        raise UserError(f"tokenizer {path} has no EOS token, needed between packed documents; pick one with it")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "chat_template.jinja")


def tokenizer_files_hash(path: str | Path) -> str | None:
    """A hash of a local tokenizer folder's files (None for a hub name): prepared data made with a tokenizer
    is keyed by what the tokenizer is, so retraining the model behind `tokenizer.path` prepares anew."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_hash(tok: PreTrainedTokenizerBase) -> str:
    """Identity of a tokenizer's vocabulary and rules, recorded with the shards it produced."""
    return hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def token_byte_lengths(tok: PreTrainedTokenizerBase) -> np.ndarray:
    """UTF-8 bytes of text each token id stands for (0 for special tokens), for bits-per-byte.

    Handles byte-level BPE (GPT-2, Llama 3, ours) exactly, and SentencePiece pieces (`▁`, `<0xNN>`).
    """
    byte_level = '"ByteLevel"' in json.dumps(json.loads(tok.backend_tokenizer.to_str()).get("decoder"))
    byte_chars = set(pre_tokenizers.ByteLevel.alphabet())  # each stands for exactly one byte
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    lengths = np.zeros(len(tok), dtype=np.uint8)
    for token, i in tok.get_vocab().items():
        if i in special or i >= len(lengths):
            continue
        if byte_level and all(c in byte_chars for c in token):
            n = len(token)
        elif token.startswith("<0x") and token.endswith(">") and len(token) == 6:
            n = 1
        else:
            n = len(token.replace("\u2581", " ").encode())
        lengths[i] = min(n, 255)
    return lengths
