"""NERDataModule: CoNLL or JSONL sentences -> sub-word tokens with word labels aligned by character offsets.

Words are joined with spaces and tokenized as text, and each sub-token is mapped to its word through the
tokenizer's offsets; the first sub-token of a word carries the word's tag, the rest are IGNORE. (Our
byte-level BPE has no prefix space: `is_split_into_words=True` would tokenize " went" as "wen"+"t".)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from lightning_llm.config import from_dict
from lightning_llm.data.config import IGNORE
from lightning_llm.data.sampling import RankSampler
from lightning_llm.data.tokenizer import load_tokenizer
from lightning_llm.errors import UserError
from lightning_llm.tasks.config import NERDataConfig
from lightning_llm.tasks.records import files_of, read_hub, read_local

log = logging.getLogger("lightning_llm")
SPLITS = ("train", "validation", "test")
Sentence = tuple[list[str], list[str], str]  # words, IOB2 tags, where (file:line)


def read_conll(path: Path, token_column: int = 0, tag_column: int = -1) -> Iterator[Sentence]:
    """Whitespace-separated columns, one word per line, blank lines between sentences, -DOCSTART- skipped."""
    words: list[str] = []
    tags: list[str] = []
    width, start = None, 1
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate([*f, "\n"], 1):
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if words:
                    yield words, tags, f"{path}:{start}"
                words, tags, start = [], [], n + 1
                continue
            if width is None:
                width = len(cols)
            if len(cols) != width:
                raise UserError(f"{path}:{n}: {len(cols)} columns, but the file's first line has {width}: every "
                                "line needs the same columns (word ... tag), whitespace-separated")
            try:
                words.append(cols[token_column])
                tags.append(cols[tag_column])
            except IndexError:
                raise UserError(f"{path}:{n}: no column {tag_column} (the line has {len(cols)}): set "
                                "data.token_column / data.tag_column") from None


def read_jsonl(records: Iterator[tuple[dict, str]], label_names: list[str] | None) -> Iterator[Sentence]:
    for row, where in records:
        words, tags = row.get("tokens"), row.get("ner_tags")
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise UserError(f"{where}: needs 'tokens' and 'ner_tags', two lists of the same length")
        if tags and isinstance(tags[0], int):
            if not label_names:
                raise UserError(f"{where}: ner_tags are numbers: give their names, data.label_names=[O,B-PER,...]")
            tags = [label_names[t] for t in tags]
        if words:
            yield [str(w) for w in words], [str(t) for t in tags], where


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (I- opens a chunk unless it continues one of the same type) -> IOB2 (every chunk opens with B-)."""
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            prev = out[i - 1] if i else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                tag = "B-" + tag[2:]
        out.append(tag)
    return out


def label_list(tags: list[list[str]]) -> list[str]:
    """O first, then B-/I- of each type, types sorted: the label ids the model's head predicts."""
    types = sorted({t[2:] for sent in tags for t in sent if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def align(words: list[str], tags: list[str], tokenizer, label2id: dict[str, int],
          seq_len: int) -> tuple[list[int], list[int], bool]:
    """Token ids and labels (first sub-token of each word; IGNORE elsewhere); truncated to `seq_len`."""
    text, spans = "", []
    for w in words:
        if text:
            text += " "
        spans.append((len(text), len(text) + len(w)))
        text += w
    owner = np.full(len(text) + 1, -1)
    for i, (s, e) in enumerate(spans):
        owner[s:e] = i
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels, seen = [], set()
    for s, e in enc["offset_mapping"]:
        while s < e and text[s] == " ":  # byte-level tokens carry the space before a word
            s += 1
        word = int(owner[s]) if s < e else -1
        if word >= 0 and word not in seen:
            seen.add(word)
            labels.append(label2id[tags[word]])
        else:
            labels.append(IGNORE)
    ids = enc["input_ids"]
    return ids[:seq_len], labels[:seq_len], len(ids) > seq_len


class NERDataModule(L.LightningDataModule):
    """Tagged sentences -> padded batches of `input_ids`, `attention_mask` and word-start `labels`.

    Args:
        data: where sentences come from (CoNLL or JSONL), columns, tag scheme, sequence length, batch size.
        tokenizer: the folder of the model's tokenizer (the model to fine-tune).
        seed: seeds the order of training batches and the validation/test cut.
    """

    def __init__(self, data: NERDataConfig | dict[str, Any] | None = None, tokenizer: str | Path | None = None,
                 seed: int = 1234):
        super().__init__()
        self.data = from_dict(NERDataConfig, data, "data")
        if tokenizer is None:
            raise UserError("fine-tuning needs the model to start from: init_from=<an export/ folder>")
        self.tokenizer_dir, self.seed = Path(tokenizer), seed
        self.tokenizer = None
        self.labels: list[str] = []
        self.sentences: dict[str, list[Sentence]] = {}
        self.encoded: dict[str, list[tuple[list[int], list[int]]]] = {}
        self.batches_consumed = 0

    @property
    def label2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.labels)}

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        self.tokenizer.model_max_length = 1 << 30  # data.seq_len bounds sentences (with a counted warning)
        self.sentences = read_ner_splits(self.data, self.seed)
        self.labels = label_list([t for _, t, _ in self.sentences["train"]])
        label2id = self.label2id
        for split, sentences in self.sentences.items():
            out, truncated = [], 0
            for words, tags, where in sentences:
                unknown = sorted(set(tags) - set(label2id))
                if unknown:
                    raise UserError(f"{where}: tag(s) {unknown} never occur in the train split (its labels: "
                                    f"{self.labels}): fix the tag, or add examples of it to train")
                ids, labels, cut = align(words, tags, self.tokenizer, label2id, self.data.seq_len)
                truncated += cut
                out.append((ids, labels))
            if truncated:
                log.warning("%s: %d of %d sentences are longer than data.seq_len=%d tokens: cut at the end (their "
                            "last words are not scored); raise data.seq_len to keep them", split, truncated,
                            len(sentences), self.data.seq_len)
            self.encoded[split] = out
        log.info("NER labels %s; sentences: %s", self.labels, {k: len(v) for k, v in self.encoded.items()})

    def _collate(self, items: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in items)
        pad = self.tokenizer.pad_token_id
        return {"input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in items]),
                "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in items]),
                "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in items])}

    def train_dataloader(self) -> DataLoader:
        from lightning_llm.data.sampling import GlobalBatchSampler

        rank, world = self._rank_and_world()
        sampler = GlobalBatchSampler(len(self.encoded["train"]), self.data.batch_size, rank, world, self.seed,
                                     start_batch=self.batches_consumed)
        return DataLoader(self.encoded["train"], batch_sampler=sampler, collate_fn=self._collate,
                          num_workers=self.data.num_workers, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def eval_dataloader(self, split: str) -> DataLoader:
        """Every sentence of `split` once, sharded across processes (padding rows count for nothing)."""
        rank, world = self._rank_and_world()
        rows = self.encoded[split]
        sampler = RankSampler(len(rows), rank, world)
        padded = rows + [(rows[0][0], [IGNORE] * len(rows[0][1]))] * (sampler.padded - len(rows))
        return DataLoader(padded, batch_size=self.data.eval_batch_size or self.data.batch_size, sampler=sampler,
                          collate_fn=self._collate, num_workers=self.data.num_workers)

    def _rank_and_world(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.batches_consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"batches_consumed": self.batches_consumed, "seed": self.seed, "labels": self.labels}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_consumed = state_dict["batches_consumed"]
        if state_dict.get("labels") and state_dict["labels"] != self.labels:
            raise UserError(f"the checkpoint was trained with the labels {state_dict['labels']}, this data has "
                            f"{self.labels}: resume with the same data, or start a new run dir")


def read_ner_splits(cfg: NERDataConfig, seed: int) -> dict[str, list[Sentence]]:
    from lightning_llm.tasks.sft_data import cap_examples, cut_missing
    from lightning_llm.tasks.sources import source_records

    if cfg.format not in ("conll", "jsonl"):
        raise UserError(f"data.format={cfg.format!r}: choose conll or jsonl")
    if cfg.scheme not in ("iob1", "iob2"):
        raise UserError(f"data.scheme={cfg.scheme!r}: choose iob2 or iob1")
    found: dict[str, list[Sentence]] = {}
    for split in SPLITS:
        if cfg.data_files:
            if cfg.data_files.get(split) is None:
                continue
            files = files_of(cfg.data_files[split], f"data.data_files.{split}")
            if cfg.format == "conll":
                sents = [s for f in files for s in read_conll(f, cfg.token_column, cfg.tag_column)]
            else:
                sents = list(read_jsonl(read_local(files), cfg.label_names))
        elif cfg.path:
            records = read_hub(cfg.path, cfg.name, cfg.revision, split)
            if records is None:
                continue
            sents = list(read_jsonl(records, cfg.label_names))
        elif cfg.source:
            sents = list(read_jsonl(source_records(cfg.source, split), cfg.label_names))
        else:
            raise UserError("no NER data: give data.data_files.train=<file.conll> (or data.path=<hub name>)")
        if cfg.scheme == "iob1":
            sents = [(w, to_iob2(t), where) for w, t, where in sents]
        found[split] = sents
    if not found.get("train"):
        raise UserError("the NER train split is empty: give data.data_files.train=<file>")
    found = cut_missing(found, cfg.split.validation, cfg.split.test, cfg.split.seed)
    return cap_examples(found, cfg.max_examples, seed)
