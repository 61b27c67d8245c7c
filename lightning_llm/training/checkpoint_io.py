"""Checkpoints written as every other file of a run is: a temp file in the checkpoint's own folder, flushed and
fsynced, then renamed over the final name.

Lightning's own save goes through an fsspec transaction, whose temp file lives in the system temp folder: when
that is another filesystem than the run dir, the final "rename" is a copy, and a full disk leaves a half-file
under the final name that does not load. Here a failed write leaves the final name untouched (and an earlier
checkpoint of that name, `last.ckpt`, whole); a full disk is an `OSError(ENOSPC)` naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from lightning_llm.io import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` with a same-folder temp file + fsync + rename for local paths (URLs: Lightning's)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        # serialized in memory first (as Lightning's own save does): torch's zip writer reports a full disk as a
        # RuntimeError ("unexpected pos"), a plain write as the OSError(ENOSPC) it is
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_file(path) as f:
            f.write(buffer.getbuffer())
        return None


def use_atomic_checkpoints(trainer) -> None:
    """Swap the strategy's plain `TorchCheckpointIO` for ours (DeepSpeed and others that write their own
    checkpoint folders keep theirs)."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
