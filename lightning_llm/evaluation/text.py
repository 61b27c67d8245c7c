"""Loss, perplexity and bits per byte of a model on the validation/test text of any data source."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from lightning_llm.evaluation.metrics import LanguageModelMetrics, token_nats


@torch.no_grad()
def evaluate_text(model, loader: DataLoader, max_batches: int | None = None) -> dict[str, float]:
    """Exact sums over the whole loader (or its first `max_batches`), as in training's validation."""
    model.eval()
    metrics = LanguageModelMetrics()
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        logits = model(input_ids=batch["input_ids"].to(model.device)).logits
        nats = token_nats(logits, batch["labels"].to(model.device))
        metrics.update(nats.cpu(), batch["label_bytes"], batch["labels"])
    return {k: float(v) for k, v in metrics.compute().items()}
