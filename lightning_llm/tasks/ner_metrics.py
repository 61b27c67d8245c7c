"""Entity-level precision, recall and F1, the way conlleval (and seqeval's default mode) count them.

A chunk opens at B-X, or at I-X after O or after another type, and runs while I-X follows; a predicted
entity is correct only when its type and both ends match a gold entity.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) of each chunk in a tag sequence (IOB1 or IOB2)."""
    out, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and t == kind and start is not None
        if start is not None and not continues:
            out.add((kind, start, i - 1))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, t
    return out


class EntityF1(Metric):
    """Counts true positives, predicted and gold entities per type over a whole split (summed across
    processes); `compute()` gives overall (micro) and per-type precision/recall/F1 on a 0-100 scale."""

    full_state_update = False

    def __init__(self, labels: list[str], **kwargs):
        super().__init__(**kwargs)
        self.labels = labels
        self.types = sorted({t[2:] for t in labels if t != "O"})
        # rows: types; columns: correct, predicted, gold
        self.add_state("counts", default=torch.zeros(len(self.types), 3, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, predicted: list[list[str]], gold: list[list[str]]) -> None:
        counts = torch.zeros_like(self.counts)
        for p, g in zip(predicted, gold, strict=True):
            pe, ge = entities(p), entities(g)
            for kind, *_ in pe & ge:
                counts[self.types.index(kind), 0] += 1
            for kind, *_ in pe:
                if kind in self.types:
                    counts[self.types.index(kind), 1] += 1
            for kind, *_ in ge:
                counts[self.types.index(kind), 2] += 1
        self.counts = self.counts + counts

    def update_ids(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """From a batch: word tags are read where labels are not IGNORE (a word's first sub-token)."""
        predicted, gold = [], []
        for row_pred, row_gold in zip(logits.argmax(-1).tolist(), labels.tolist(), strict=True):
            keep = [i for i, g in enumerate(row_gold) if g >= 0]
            if keep:
                predicted.append([self.labels[row_pred[i]] for i in keep])
                gold.append([self.labels[row_gold[i]] for i in keep])
        self.update(predicted, gold)

    def compute(self) -> dict[str, torch.Tensor]:
        out = _prf(self.counts.sum(0))
        for kind, row in zip(self.types, self.counts, strict=True):
            out[f"f1_{kind}"] = _prf(row)["f1"]
        return out


def _prf(row: torch.Tensor) -> dict[str, torch.Tensor]:
    correct, predicted, gold = row
    p = correct / predicted if predicted > 0 else torch.tensor(0.0, dtype=torch.float64)
    r = correct / gold if gold > 0 else torch.tensor(0.0, dtype=torch.float64)
    f = 2 * p * r / (p + r) if p + r > 0 else torch.tensor(0.0, dtype=torch.float64)
    return {"precision": (100 * p).float(), "recall": (100 * r).float(), "f1": (100 * f).float()}
