"""Language-modelling metrics over a whole evaluation set: loss, perplexity and bits per UTF-8 byte.

Sums (not means of batch means) are accumulated and reduced across processes by torchmetrics, so the
result is exact whatever the batch size or number of devices. Bits per byte divides the nats spent on
text tokens by the UTF-8 bytes those tokens stand for; special tokens (EOS) have no bytes and are left
out of it, so models with different tokenizers compare.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from lightning_llm.data.config import IGNORE


def token_nats(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each target token in nats, flattened: logits [batch, seq, vocab], labels [batch, seq].

    Computed in float32 whatever the logits' dtype, so bf16 training reports comparable losses; an
    `IGNORE` label costs 0.
    """
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none", ignore_index=IGNORE)


class LanguageModelMetrics(Metric):
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("nats", "tokens", "text_nats", "text_bytes"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, token_nats: torch.Tensor, label_bytes: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> None:
        """`token_nats`: per-token cross-entropy; `label_bytes`: UTF-8 bytes of each target token; `labels`: the
        targets, whose `IGNORE` entries (padding) are left out of every sum."""
        token_nats = token_nats.detach().double().flatten()
        if labels is not None:
            counted = labels.flatten().to(token_nats.device) != IGNORE
            token_nats = token_nats[counted]
            label_bytes = label_bytes.flatten()[counted.to(label_bytes.device)] if label_bytes is not None else None
        # out of place: states reset under inference mode (validate before fit) reject in-place updates
        self.nats = self.nats + token_nats.sum()
        self.tokens = self.tokens + token_nats.numel()
        if label_bytes is not None:
            label_bytes = label_bytes.flatten()
            text = label_bytes > 0
            self.text_nats = self.text_nats + token_nats[text].sum()
            self.text_bytes = self.text_bytes + label_bytes.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        loss = self.nats / self.tokens.clamp(min=1)
        out = {"loss": loss.float(), "ppl": torch.exp(loss).float()}
        if self.text_bytes > 0:
            out["bpb"] = (self.text_nats / self.text_bytes / math.log(2)).float()
        return out
