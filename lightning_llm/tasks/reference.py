"""Precomputed reference log-probs (`dpo.precompute_reference=true`): one pass of the base over every pair before
training, kept on disk keyed by the base's weights and the pairs' tokens, so a second run or a resume reuses them,
and another base or other data computes them anew. Training then needs no reference model at all.

Computed in fp32 (before the Trainer picks a precision): under bf16-mixed the policy's first log-probs differ from
them by bf16's rounding, as they would from a reference run under autocast.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from lightning_llm.paths import cache_dir
from lightning_llm.tasks.preference_data import PairRows, PreferenceDataModule

log = logging.getLogger("lightning_llm")


def model_digest(folder: Path) -> str:
    """sha256 of a model folder's config and weights (what makes its log-probs)."""
    h = hashlib.sha256()
    for path in sorted([folder / "config.json", *folder.glob("*.safetensors")]):
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def pairs_digest(rows: PairRows) -> str:
    h = hashlib.sha256()
    for pair in rows.pairs:
        for ids, labels in (pair.chosen, pair.rejected):
            h.update(ids.tobytes())
            h.update(labels.tobytes())
    return h.hexdigest()


def precompute_reference(module, datamodule: PreferenceDataModule, base: Path) -> dict[str, Path]:
    """Fill each split's `reference` ([pairs, 2]: chosen, rejected) from the cache or by one pass of `module`'s
    reference (the model before training); returns the cache file of each split."""
    base_digest = model_digest(base)
    files = {}
    for split, rows in datamodule.datasets.items():
        key = hashlib.sha256(f"{base_digest}|{pairs_digest(rows)}".encode()).hexdigest()[:20]
        path = cache_dir() / "reference_logps" / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):  # DDP ranks: one computes, the others read its file
            if path.is_file():
                rows.reference = np.load(path)
                log.info("%s: reference log-probs of %d pairs reused from %s", split, len(rows), path)
            else:
                rows.reference = _compute(module, datamodule, split)
                _save(path, rows.reference)
                log.info("%s: reference log-probs of %d pairs computed and kept in %s", split, len(rows), path)
        files[split] = path
    return files


@torch.no_grad()
def _compute(module, datamodule: PreferenceDataModule, split: str) -> np.ndarray:
    out = np.zeros((len(datamodule.datasets[split]), 2), dtype=np.float32)
    for batch in datamodule.eval_dataloader(split):
        ref = module.reference_logps(batch).view(-1, 2).cpu().numpy()
        real = batch["pair_weight"].numpy() > 0
        out[batch["pair_index"].numpy()[real]] = ref[real]
    return out


def _save(path: Path, values: np.ndarray) -> None:
    from lightning_llm.io import atomic_file

    with atomic_file(path) as f:
        np.save(f, values)
