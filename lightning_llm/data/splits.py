"""Deterministic split by document (or by group of documents) into train / validation / test."""

from __future__ import annotations

import logging

import datasets
import numpy as np

from lightning_llm.data.config import SplitConfig
from lightning_llm.errors import UserError

log = logging.getLogger(__name__)

_PIECES = 100  # a corpus of too few documents is cut into about this many contiguous pieces


def complete_splits(dd: datasets.DatasetDict, cfg: SplitConfig) -> datasets.DatasetDict:
    """Cut the splits the source lacks (validation, test) from train, by whole documents, seeded.

    A train split of fewer documents than splits (say, one big .txt file) is first cut into contiguous
    pieces at line boundaries, so a single file still yields held-out text.
    """
    missing = {s: getattr(cfg, s) for s in ("validation", "test") if s not in dd}
    if not missing:
        return dd
    train = dd["train"]
    grouped = "group" in train.column_names
    if not grouped and len(train) < len(missing) + 1:
        train = _cut_into_pieces(train, _PIECES)
        log.warning("Only %d train document(s): cut into %d contiguous pieces to hold out %s",
                    len(dd["train"]), len(train), " and ".join(missing))
    groups = np.asarray(train["group"]) if grouped else np.arange(len(train))
    unique, sizes = np.unique(groups, return_counts=True)
    if len(unique) < len(missing) + 1:
        raise UserError(f"cannot split {len(train)} train document(s) into train + {' + '.join(missing)}: "
                        f"give at least {len(missing) + 1} " + ("groups of documents" if grouped else "documents")
                        + " or provide data.data_files." + "/".join(missing))
    size_of = dict(zip(unique.tolist(), sizes.tolist(), strict=True))
    order = np.random.default_rng(cfg.seed).permutation(unique)
    out = dict(dd)
    start = 0
    for i, (split, fraction) in enumerate(missing.items()):
        reserved = len(missing) - i  # one group at least for each later split and for train
        target, taken, chosen = max(1.0, fraction * len(train)), 0, []
        while taken < target and start < len(order) - reserved:
            chosen.append(order[start])
            taken += size_of[order[start].item()]
            start += 1
        out[split] = train.select(np.flatnonzero(np.isin(groups, chosen)))
    out["train"] = train.select(np.flatnonzero(np.isin(groups, order[start:])))
    return datasets.DatasetDict(out)


def _cut_into_pieces(ds: datasets.Dataset, pieces: int) -> datasets.Dataset:
    texts = ds["text"]
    target = max(1, sum(len(t) for t in texts) // pieces)
    out: list[str] = []
    for text in texts:
        piece: list[str] = []
        size = 0
        for line in text.splitlines(keepends=True):
            piece.append(line)
            size += len(line)
            if size >= target:
                out.append("".join(piece).strip())
                piece, size = [], 0
        if piece:
            out.append("".join(piece).strip())
    return datasets.Dataset.from_dict({"text": [t for t in out if t]})
