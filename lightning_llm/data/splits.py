"""Deterministic split by document (or by group of documents) into train / validation / test."""

from __future__ import annotations

import datasets
import numpy as np

from lightning_llm.data.config import SplitConfig
from lightning_llm.errors import UserError


def complete_splits(dd: datasets.DatasetDict, cfg: SplitConfig) -> datasets.DatasetDict:
    """Cut the splits the source lacks (validation, test) from train, by whole documents, seeded."""
    missing = {s: getattr(cfg, s) for s in ("validation", "test") if s not in dd}
    if not missing:
        return dd
    train = dd["train"]
    groups = np.asarray(train["group"]) if "group" in train.column_names else np.arange(len(train))
    unique = np.unique(groups)
    if len(unique) < len(missing) + 1:
        raise UserError(f"cannot split {len(train)} train document(s) into train + {' + '.join(missing)}: "
                        f"give at least {len(missing) + 1} documents"
                        + (" (whole groups of documents are kept together)" if len(unique) < len(train) else "")
                        + " or provide data.data_files." + "/".join(missing))
    order = np.random.default_rng(cfg.seed).permutation(unique)
    sizes = {g: c for g, c in zip(*np.unique(groups, return_counts=True), strict=True)}
    out = dict(dd)
    start = 0
    for i, (split, fraction) in enumerate(missing.items()):
        reserved = len(missing) - i  # one group at least for each later split and for train
        target, taken, chosen = max(1.0, fraction * len(train)), 0, []
        while taken < target and start < len(order) - reserved:
            chosen.append(order[start])
            taken += sizes[order[start]]
            start += 1
        out[split] = train.select(np.flatnonzero(np.isin(groups, chosen)))
    out["train"] = train.select(np.flatnonzero(np.isin(groups, order[start:])))
    return datasets.DatasetDict(out)
