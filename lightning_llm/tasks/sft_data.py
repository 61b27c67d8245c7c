"""SFTDataModule: conversations -> response-only labels -> packed rows with per-example positions.

Labels come from positions (which tokens belong to a response), never from token values: our tokenizer's
pad, BOS and EOS are one token, and masking every EOS would teach the model never to stop. Packed rows
carry `position_ids` that restart at 0 for each example and no attention mask, so `transformers` attends
within each example only (a 2D attention mask, even all ones, switches that document mask off).
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_llm.data.chat import has_own_template, segments, template_segments
from lightning_llm.data.config import IGNORE
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.data.tokenizer import load_tokenizer, token_byte_lengths
from lightning_llm.errors import UserError
from lightning_llm.tasks.config import SFTDataConfig
from lightning_llm.tasks.formats import Example, to_examples
from lightning_llm.tasks.records import files_of, read_hub, read_lines, read_local
from lightning_llm.tasks.task_data import TaskDataModule

log = logging.getLogger("lightning_llm")
SPLITS = ("train", "validation", "test")


@dataclass
class Encoded:
    input_ids: np.ndarray  # [n]
    labels: np.ndarray  # [n], IGNORE where nothing is learned


def encode(example: Example, tokenizer, train_on_prompt: bool = False) -> tuple[list[int], list[bool]]:
    """Token ids of the whole conversation and, per token, whether it is learned: each response and the end of
    its turn, which is the template's end-of-turn token (`<|im_end|>` in ChatML) where the tokenizer has a chat
    template of its own, else ours with EOS. Raises ValueError for a conversation that cannot be rendered."""
    own = has_own_template(tokenizer)
    ids: list[int] = []
    learn: list[bool] = []
    for text, is_response in template_segments(example.messages, tokenizer) if own else segments(example.messages):
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        learn += [is_response or train_on_prompt] * len(piece)
        if is_response and not own:
            ids.append(tokenizer.eos_token_id)
            learn.append(True)
    return ids, learn


def shift(ids: list[int], learn: list[bool], seq_len: int) -> tuple[Encoded | None, bool]:
    """Inputs and next-token labels of one example, left-truncated to `seq_len` inputs when longer (the
    start of the prompt goes, the response stays). Returns (None, truncated) when no label is left."""
    truncated = len(ids) - 1 > seq_len
    if truncated:
        ids, learn = ids[-(seq_len + 1):], learn[-(seq_len + 1):]
    inputs = np.asarray(ids[:-1], dtype=np.int64)
    labels = np.where(np.asarray(learn[1:]), np.asarray(ids[1:], dtype=np.int64), IGNORE)
    if not (labels != IGNORE).any():
        return None, truncated
    return Encoded(inputs, labels), truncated


def best_fit_bins(lengths: list[int], capacity: int, packed: bool = True) -> list[list[int]]:
    """Indices grouped into bins of at most `capacity` tokens, best fit, longest first (or one index per bin)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin) sorted, for the best fit
    for i in order:
        n = lengths[i]
        at = bisect.bisect_left(free, (n, -1)) if packed else len(free)
        if at < len(free):
            room, b = free.pop(at)
            bins[b].append(i)
            bisect.insort(free, (room - n, b))
        else:
            bins.append([i])
            if packed:
                bisect.insort(free, (capacity - n, len(bins) - 1))
    return bins


def pack(examples: list[Encoded], seq_len: int, pad_id: int, packed: bool = True) -> dict[str, np.ndarray]:
    """Rows of `seq_len`: best-fit decreasing bins of whole examples (or one example per row), each example
    with positions from 0; padding is learned from nothing (IGNORE) and starts positions anew."""
    bins = best_fit_bins([len(e.input_ids) for e in examples], seq_len, packed)
    rows = len(bins)
    out = {"input_ids": np.full((rows, seq_len), pad_id, dtype=np.int32),
           "labels": np.full((rows, seq_len), IGNORE, dtype=np.int32),
           "position_ids": np.zeros((rows, seq_len), dtype=np.int32)}
    for r, members in enumerate(bins):
        at = 0
        for i in members:
            e = examples[i]
            n = len(e.input_ids)
            out["input_ids"][r, at:at + n] = e.input_ids
            out["labels"][r, at:at + n] = e.labels
            out["position_ids"][r, at:at + n] = np.arange(n)
            at += n
        out["position_ids"][r, at:] = np.arange(seq_len - at)
    return out


class SFTRows(Dataset):
    """Packed rows; an index may come with the label-token count of its whole optimizer step (see
    `StepTokenSampler`), which the loss divides by."""

    def __init__(self, rows: dict[str, np.ndarray], token_bytes: np.ndarray):
        self.rows = rows
        self.token_bytes = token_bytes
        self.label_counts = (rows["labels"] != IGNORE).sum(axis=1)

    def __len__(self) -> int:
        return len(self.rows["input_ids"])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, step_tokens = key if isinstance(key, tuple) else (key, None)
        labels = torch.from_numpy(self.rows["labels"][index].astype(np.int64))
        item = {"input_ids": torch.from_numpy(self.rows["input_ids"][index].astype(np.int64)), "labels": labels,
                "position_ids": torch.from_numpy(self.rows["position_ids"][index].astype(np.int64)),
                "label_bytes": torch.from_numpy(np.where(labels.numpy() == IGNORE, 0,
                                                         self.token_bytes[labels.clamp(min=0).numpy()]))}
        if step_tokens is not None:
            item["step_tokens"] = torch.tensor(step_tokens, dtype=torch.int64)
        return item


class StepTokenSampler(GlobalBatchSampler):
    """`GlobalBatchSampler` whose indices carry the number of label tokens in their whole optimizer step
    (all processes, all accumulated micro-batches), so each micro-batch's loss is its share of one mean over
    every response token of the step, the same with or without accumulation and across processes."""

    def __init__(self, label_counts: np.ndarray, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, start_batch: int = 0, accumulate: int = 1):
        super().__init__(len(label_counts), batch_size, rank, world_size, seed, start_batch)
        self.label_counts, self.accumulate = label_counts, accumulate
        self.batches_per_epoch -= self.batches_per_epoch % accumulate  # optimizer steps never span epochs
        if self.batches_per_epoch == 0:
            raise ValueError(f"{len(label_counts)} training rows cannot fill one optimizer step of {accumulate} "
                             f"accumulated batches of {self.global_batch}: lower data.batch_size or add data")

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.next_batch // self.batches_per_epoch
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch)).numpy()
        step_rows = self.global_batch * self.accumulate
        for indices in super().__iter__():
            b = (self.next_batch - 1) % self.batches_per_epoch
            group = b // self.accumulate
            total = int(self.label_counts[order[group * step_rows:(group + 1) * step_rows]].sum())
            yield [(i, total) for i in indices]


class SFTDataModule(TaskDataModule):
    """Instruction examples -> packed, response-only batches; usable with a plain `lightning.Trainer`
    (give it `use_distributed_sampler=False`: the sampler shards).

    Args:
        data: where examples come from, their format and template, sequence length and batch size.
        tokenizer: the folder of the model's tokenizer (the model to fine-tune, e.g. an export/ folder).
        seed: seeds the order of training batches and the validation/test cut.
    """

    config = SFTDataConfig

    def __init__(self, data: SFTDataConfig | dict[str, Any] | None = None, tokenizer: str | Path | None = None,
                 seed: int = 1234):
        super().__init__(data, tokenizer, seed)
        self.examples: dict[str, list[Example]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        self.tokenizer.model_max_length = 1 << 30  # data.seq_len bounds examples (with a counted warning)
        token_bytes = token_byte_lengths(self.tokenizer)
        self.examples = read_splits(self.data, self.seed)
        for split, examples in self.examples.items():
            encoded, truncated, dropped = [], 0, 0
            for n, ex in enumerate(examples, 1):
                try:
                    e, cut = shift(*encode(ex, self.tokenizer, self.data.train_on_prompt), self.data.seq_len)
                except ValueError as err:
                    raise UserError(f"{split} example {n} ({ex.messages[0]['content'][:40]!r}...): {err}") from None
                truncated += cut
                if e is None:
                    dropped += 1
                else:
                    encoded.append(e)
            if not encoded:
                raise UserError(f"the {split} split has no example left that fits data.seq_len="
                                f"{self.data.seq_len}: raise it")
            rows = pack(encoded, self.data.seq_len, self.tokenizer.eos_token_id, self.data.pack)
            self.datasets[split] = SFTRows(rows, token_bytes)
            self.stats[split] = {"examples": len(examples), "truncated": truncated, "dropped": dropped,
                                 "rows": len(rows["input_ids"]),
                                 "label_tokens": int(self.datasets[split].label_counts.sum())}
            if truncated or dropped:
                log.warning("%s: %d of %d examples are longer than data.seq_len=%d: the start of their prompt was "
                            "cut (left truncation); %d lost every response token and were dropped. Raise "
                            "data.seq_len to keep them whole", split, truncated, len(examples), self.data.seq_len,
                            dropped)
            log.info("%s: %d examples -> %d rows of %d tokens (%d response tokens learned)", split, len(examples),
                     self.stats[split]["rows"], self.data.seq_len, self.stats[split]["label_tokens"])

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        sampler = StepTokenSampler(self.datasets["train"].label_counts, self.data.batch_size, rank, world, self.seed,
                                   start_batch=self.batches_consumed, accumulate=accumulate)
        return DataLoader(self.datasets["train"], batch_sampler=sampler, **self._workers())


def read_splits(cfg: SFTDataConfig, seed: int) -> dict[str, list[Example]]:
    """Examples of train, validation and test; missing splits are cut from train (`cfg.split`)."""
    from lightning_llm.tasks.sources import source_records

    def examples(records) -> list[Example]:
        return to_examples(records, cfg.format, cfg.column_map, cfg.template, cfg.system, cfg.source_lang,
                           cfg.target_lang)

    found: dict[str, list[Example]] = {}
    for split in SPLITS:
        if cfg.data_files:
            spec = cfg.data_files.get(split)
            if spec is None:
                continue
            files = files_of(spec, f"data.data_files.{split}")
            records = read_lines(files, f"data.data_files.{split}") if cfg.format == "lines" else read_local(files)
        elif cfg.path:
            records = read_hub(cfg.path, cfg.name, cfg.revision, split)
        elif cfg.source:
            records = source_records(cfg.source, split)
        else:
            raise UserError("no fine-tuning data: give data.data_files.train=<file> (or data.path=<hub name>, or "
                            "data.source=<built-in task data>)")
        if records is not None:
            found[split] = examples(records)
    if "train" not in found:
        raise UserError("no train split: give data.data_files.train=<file>")
    found = cut_missing(found, cfg.split.validation, cfg.split.test, cfg.split.seed)
    return cap_examples(found, cfg.max_examples, seed)


def cap_examples(found: dict[str, list], caps: dict[str, int] | None, seed: int) -> dict[str, list]:
    """At most `caps[split]` examples per split: a seeded sample of train (sources are often ordered), the first
    ones of validation and test (the same set every run)."""
    for split, cap in (caps or {}).items():
        if split in found and cap and len(found[split]) > cap:
            found[split] = random.Random(seed).sample(found[split], cap) if split == "train" else found[split][:cap]
    return found


def cut_missing(found: dict[str, list], validation: float, test: float, seed: int) -> dict[str, list]:
    """Cut validation/test from train (a seeded shuffle) when the data does not provide them."""
    missing = {s: f for s, f in (("validation", validation), ("test", test)) if s not in found}
    if not missing:
        return found
    train = list(found["train"])
    random.Random(seed).shuffle(train)
    for split, fraction in missing.items():
        n = max(1, round(len(train) * fraction))
        if n >= len(train):
            raise UserError(f"{len(found['train'])} train examples are too few to cut a {split} split from: add data "
                            f"or give data.data_files.{split}")
        found[split], train = train[:n], train[n:]
    return {**found, "train": train}
