"""Read what Lightning wrote as a checkpoint: a `.ckpt` file, or the folder DeepSpeed writes under that name.

A DeepSpeed checkpoint `step-0000300.ckpt/` holds `checkpoint/` (Lightning's tag) with the model states file
(`mp_rank_00_model_states.pt`, or `zero_pp_rank_0_mp_rank_00_model_states.pt` under ZeRO-3) that carries
Lightning's own state (hyperparameters, loops, DataModule, callbacks) beside DeepSpeed's, and the optimizer
partitions. Tools that only need that state (resume checks, the run's data, the W&B id) read it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TAG = "checkpoint"  # the tag Lightning's DeepSpeedStrategy saves under
_MODEL_STATES = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")


def is_deepspeed_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and model_states_file(path) is not None


def model_states_file(path: str | Path) -> Path | None:
    folder = Path(path) / TAG
    return next((folder / name for name in _MODEL_STATES if (folder / name).is_file()), None)


def read_state(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """Lightning's checkpoint dict (for a DeepSpeed folder: its client state, without the weights)."""
    path = Path(path)
    if path.is_dir():
        states = model_states_file(path)
        if states is None:
            raise FileNotFoundError(f"{path} is a folder but not a DeepSpeed checkpoint (no {TAG}/*model_states.pt)")
        try:
            return torch.load(states, map_location="cpu", weights_only=True)
        except Exception:  # DeepSpeed pickles its own objects (as its loader does): the run's own file
            return torch.load(states, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def model_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The LightningModule's full state dict (`model.` keys): from the file, or gathered from a DeepSpeed
    folder (ZeRO-2 keeps the whole module in its states file; ZeRO-3's partitions need DeepSpeed installed)."""
    path = Path(path)
    if not path.is_dir():
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    state = read_state(path)
    zero3 = model_states_file(path).name.startswith("zero_pp")
    if not zero3 and isinstance(state.get("module"), dict) and state["module"]:
        return {k.removeprefix("_forward_module."): v for k, v in state["module"].items()}
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError as e:
        from lightning_llm.errors import UserError

        raise UserError(f"{path} is a DeepSpeed ZeRO-3 checkpoint: gathering its partitions needs DeepSpeed "
                        "(pip install 'lightning_llm[deepspeed]')") from e
    weights = get_fp32_state_dict_from_zero_checkpoint(str(path), TAG)
    return {k.removeprefix("_forward_module."): v for k, v in weights.items()}
