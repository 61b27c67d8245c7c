"""PreferenceDataModule: preference pairs -> token sequences -> batches of pairs, packed.

Each pair becomes two sequences (prompt + chosen, prompt + rejected) rendered with the base's own chat template;
only the completion's assistant turns (and the template's end-of-turn token) carry labels. A batch is
`data.batch_size` pairs; with `data.pack` its 2 x batch_size sequences are packed into as few rows of
`data.seq_len` tokens as fit them (best fit, decreasing), each sequence with positions from 0, so it attends only to
itself (transformers builds the per-sequence mask from position ids when no attention mask is given). Without
packing every sequence is its own row, padded to the batch's longest (padding sits after the sequence: causal
attention never lets a real token see it). `seq_ids` names the sequence each label token belongs to (2i chosen,
2i+1 rejected of the batch's pair i), so per-sequence log-probs are sums over it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_llm.data.chat import has_own_template, segments, template_segments
from lightning_llm.data.config import IGNORE
from lightning_llm.data.sampling import GlobalBatchSampler, RankSampler
from lightning_llm.data.tokenizer import load_tokenizer
from lightning_llm.errors import UserError
from lightning_llm.tasks.config import PreferenceDataConfig
from lightning_llm.tasks.preference_formats import Messages, Pair, to_pairs
from lightning_llm.tasks.records import files_of, read_hub, read_local
from lightning_llm.tasks.sft_data import best_fit_bins, cap_examples, cut_missing
from lightning_llm.tasks.task_data import TaskDataModule

log = logging.getLogger("lightning_llm")
SPLITS = ("train", "validation", "test")


@dataclass
class EncodedPair:
    chosen: tuple[np.ndarray, np.ndarray]  # (input ids, next-token labels with IGNORE off the completion)
    rejected: tuple[np.ndarray, np.ndarray]


def encode_turns(messages: Messages, first_learned: int, tokenizer) -> tuple[list[int], list[bool]]:
    """Token ids of a conversation and, per token, whether it is learned: the assistant turns from the
    `first_learned`-th on (the completion's), each with the end of its turn. Raises ValueError when the template
    cannot render it turn by turn."""
    own = has_own_template(tokenizer)
    ids: list[int] = []
    learn: list[bool] = []
    turn = 0
    for text, is_response in template_segments(messages, tokenizer) if own else segments(messages):
        learned = is_response and turn >= first_learned
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        learn += [learned] * len(piece)
        if is_response:
            if not own:  # our format ends a turn with EOS
                ids.append(tokenizer.eos_token_id)
                learn.append(learned)
            turn += 1
    return ids, learn


def encode_pair(pair: Pair, tokenizer, seq_len: int) -> tuple[EncodedPair | None, str | None]:
    """Both sequences of `pair`, each at most `seq_len` inputs. Too long: the prompt's beginning is cut, the same
    tokens from both (they share it), returning (pair, "prompt_cut"); a completion longer than `seq_len` on its own
    drops the pair, returning (None, "completion_too_long")."""
    first = sum(m["role"] == "assistant" for m in pair.prompt)
    seqs = [encode_turns(pair.prompt + c, first, tokenizer) for c in (pair.chosen, pair.rejected)]
    prompt_len = min(learn.index(True) for _, learn in seqs)  # the shared tokens before either completion
    cut = max(len(ids) - 1 - seq_len for ids, _ in seqs)
    rule = None
    if cut > 0:
        if cut >= prompt_len:
            return None, "completion_too_long"
        seqs, rule = [(ids[cut:], learn[cut:]) for ids, learn in seqs], "prompt_cut"
    out = []
    for ids, learn in seqs:
        arr = np.asarray(ids, dtype=np.int64)
        out.append((arr[:-1], np.where(np.asarray(learn[1:]), arr[1:], IGNORE)))
    return EncodedPair(out[0], out[1]), rule


def pack_pairs(pairs: list[EncodedPair], seq_len: int, pad_id: int, packed: bool = True) -> dict[str, torch.Tensor]:
    """The batch of `pairs` as rows: sequences 2i (chosen) and 2i+1 (rejected) of pair i, packed best-fit into rows
    of at most `seq_len` tokens (or one per row), padded to the longest row."""
    seqs = [s for p in pairs for s in (p.chosen, p.rejected)]
    bins = best_fit_bins([len(s[0]) for s in seqs], seq_len, packed)
    width = max(sum(len(seqs[i][0]) for i in b) for b in bins)
    shape = (len(bins), width)
    ids, labels = np.full(shape, pad_id, dtype=np.int64), np.full(shape, IGNORE, dtype=np.int64)
    positions, seq_ids = np.zeros(shape, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
    for r, members in enumerate(bins):
        at = 0
        for i in sorted(members):
            x, y = seqs[i]
            n = len(x)
            ids[r, at:at + n], labels[r, at:at + n], positions[r, at:at + n] = x, y, np.arange(n)
            seq_ids[r, at:at + n] = np.where(y != IGNORE, i, -1)
            at += n
        positions[r, at:] = np.arange(width - at)  # padding: a sequence of its own, learned from nothing
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
            "position_ids": torch.from_numpy(positions), "seq_ids": torch.from_numpy(seq_ids)}


class PairRows(Dataset):
    """The encoded pairs of a split; an index past the end stands for a padding pair (evaluation's last batch)."""

    def __init__(self, pairs: list[EncodedPair]):
        self.pairs = pairs
        self.reference: np.ndarray | None = None  # [n, 2] precomputed reference log-probs (chosen, rejected)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[int, EncodedPair]:
        return index, self.pairs[min(index, len(self.pairs) - 1)]


class PairCollate:
    def __init__(self, dataset: PairRows, seq_len: int, pad_id: int, packed: bool):
        self.dataset, self.seq_len, self.pad_id, self.packed = dataset, seq_len, pad_id, packed

    def __call__(self, items: list[tuple[int, EncodedPair]]) -> dict[str, torch.Tensor]:
        batch = pack_pairs([p for _, p in items], self.seq_len, self.pad_id, self.packed)
        index = torch.tensor([i for i, _ in items])
        batch["pair_weight"] = (index < len(self.dataset)).float()  # 0: a padding pair, counted nowhere
        batch["pair_index"] = index.clamp(max=len(self.dataset) - 1)
        if self.dataset.reference is not None:
            batch["reference_logps"] = torch.from_numpy(self.dataset.reference[batch["pair_index"].numpy()])
        return batch


class EvalBatches(Sampler[list[int]]):
    """Every pair of a split once, sharded across processes, each process given as many batches (indices past the
    end are padding pairs, weighted 0)."""

    def __init__(self, num_pairs: int, batch_size: int, rank: int = 0, world_size: int = 1):
        indices = list(RankSampler(num_pairs, rank, world_size))
        self.batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class PreferenceDataModule(TaskDataModule):
    """Preference pairs -> packed batches of pairs; usable with a plain `lightning.Trainer` (give it
    `use_distributed_sampler=False`: the samplers shard).

    Args:
        data: where pairs come from, the sequence length, packing and the batch size (pairs per batch).
        tokenizer: the folder of the model's tokenizer (the model to align: its chat template renders the pairs).
        seed: seeds the order of training batches and the validation/test cut.
    """

    config = PreferenceDataConfig

    def __init__(self, data: PreferenceDataConfig | dict[str, Any] | None = None,
                 tokenizer: str | Path | None = None, seed: int = 1234):
        super().__init__(data, tokenizer, seed)
        self.pairs: dict[str, list[Pair]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        self.tokenizer.model_max_length = 1 << 30  # data.seq_len bounds sequences (counted)
        self.pairs = read_pair_splits(self.data, self.seed)
        for split, pairs in self.pairs.items():
            encoded, rules = [], {"prompt_cut": 0, "completion_too_long": 0}
            for pair in pairs:
                try:
                    e, rule = encode_pair(pair, self.tokenizer, self.data.seq_len)
                except ValueError as err:
                    raise UserError(f"{pair.where}: {err}") from None
                if rule:
                    rules[rule] += 1
                if e is not None:
                    encoded.append(e)
            if not encoded:
                raise UserError(f"the {split} split has no pair whose completions fit data.seq_len="
                                f"{self.data.seq_len}: raise it")
            self.datasets[split] = PairRows(encoded)
            tokens = sum(len(s[0]) for e in encoded for s in (e.chosen, e.rejected))
            self.stats[split] = {"pairs": len(pairs), "kept": len(encoded), "prompt_cut": rules["prompt_cut"],
                                 "dropped_completion_too_long": rules["completion_too_long"], "tokens": tokens}
            if any(rules.values()):
                log.warning("%s: %d of %d pairs are longer than data.seq_len=%d: %d had the beginning of their prompt "
                            "cut (the same tokens from chosen and rejected), %d were dropped because a completion "
                            "alone is longer. Raise data.seq_len to keep them whole", split, sum(rules.values()),
                            len(pairs), self.data.seq_len, rules["prompt_cut"], rules["completion_too_long"])
            log.info("%s: %d preference pairs (%d tokens in their sequences)", split, len(encoded), tokens)

    def _loader(self, split: str, batch_sampler) -> DataLoader:
        dataset = self.datasets[split]
        collate = PairCollate(dataset, self.data.seq_len, self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                              self.data.pack)
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, **self._workers())

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        sampler = GlobalBatchSampler(len(self.datasets["train"]), self.data.batch_size, rank, world, self.seed,
                                     start_batch=self.batches_consumed)
        return self._loader("train", sampler)

    def eval_dataloader(self, split: str) -> DataLoader:
        rank, world = self._rank_and_world()
        size = self.data.eval_batch_size or self.data.batch_size
        return self._loader(split, EvalBatches(len(self.datasets[split]), size, rank, world))


def read_pair_splits(cfg: PreferenceDataConfig, seed: int) -> dict[str, list[Pair]]:
    """Pairs of train, validation and test; missing splits are cut from train (`cfg.split`)."""
    from lightning_llm.tasks.sources import source_records

    if cfg.format != "preference":
        raise UserError(f"data.format={cfg.format!r}: recipe=dpo reads data.format=preference ({{\"prompt\", "
                        "\"chosen\", \"rejected\"}} or {\"chosen\", \"rejected\"} records)")
    found: dict[str, list[Pair]] = {}
    for split in SPLITS:
        if cfg.data_files:
            spec = cfg.data_files.get(split)
            if spec is None:
                continue
            records = read_local(files_of(spec, f"data.data_files.{split}"))
        elif cfg.path:
            records = read_hub(cfg.path, cfg.name, cfg.revision, split)
        elif cfg.source:
            records = source_records(cfg.source, split)
        else:
            raise UserError("no preference data: give data.data_files.train=pairs.jsonl (or data.path=<hub name>, "
                            "or data.source=plays-prefs)")
        if records is not None:
            found[split] = to_pairs(records, cfg.system)
    if "train" not in found:
        raise UserError("no train split: give data.data_files.train=pairs.jsonl")
    found = cut_missing(found, cfg.split.validation, cfg.split.test, cfg.split.seed)
    return cap_examples(found, cfg.max_examples, seed)
