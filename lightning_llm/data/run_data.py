"""The one place that answers "which prepared data did this run train on?" for a checkpoint or an export.

A checkpoint carries its DataModule's state (`prepared_dir`); an export folder of `llm-train` sits in the
run dir next to `metrics.json`, which records `prepared_data`. Tools use it to find a model's tokenizer and
to evaluate on the very splits the run was validated and tested on.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning_llm.checkpoint_files import read_state
from lightning_llm.errors import UserError

METRICS = "metrics.json"
PREPARED_KEY = "prepared_data"  # the key of metrics.json that names the prepared folder


def prepared_data_of(source: str | Path) -> Path | None:
    """The prepared folder (with its manifest) a run's checkpoint or export was trained on, or None."""
    source = Path(source)
    if source.suffix == ".ckpt":
        state = read_state(source)
        found = next((v.get("prepared_dir") for k, v in state.items()
                      if k.endswith("DataModule") and isinstance(v, dict)), None)
    else:
        metrics = source.resolve().parent / METRICS  # <run dir>/export*, next to metrics.json
        found = json.loads(metrics.read_text()).get(PREPARED_KEY) if metrics.is_file() else None
    return Path(found) if found and (Path(found) / "manifest.json").is_file() else None


def tokenizer_dir_of(source: str | Path) -> Path:
    """The tokenizer folder of a run: the export folder itself, or the prepared data of a checkpoint's run."""
    source = Path(source)
    if source.suffix != ".ckpt":
        return source
    prepared = prepared_data_of(source)
    if prepared is None or not (prepared / "tokenizer").is_dir():
        raise UserError(f"{source} does not say where its tokenizer is (or its prepared data is gone): "
                        "pass the tokenizer folder (e.g. the export/ folder of the same run)")
    return prepared / "tokenizer"
