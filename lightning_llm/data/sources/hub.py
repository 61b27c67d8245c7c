"""A `datasets` hub name (or a local dataset folder) as one datatrove reader per split it has."""

from __future__ import annotations

from typing import Any

from lightning_llm.data.config import SPLITS, DataConfig
from lightning_llm.errors import UserError


def hub_readers(cfg: DataConfig) -> dict[str, Any]:
    import datasets
    from datatrove.pipeline.readers import HuggingFaceDatasetReader

    try:
        splits = datasets.get_dataset_split_names(cfg.path, cfg.name, revision=cfg.revision)
    except Exception as e:  # datasets raises many types; the user needs the name and the reason
        raise UserError(f"could not load data.path={cfg.path!r} with datasets: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if "train" not in splits:
        raise UserError(f"datasets {cfg.path} has no train split (splits: {splits})")
    options = {k: v for k, v in (("name", cfg.name), ("revision", cfg.revision)) if v}
    return {split: HuggingFaceDatasetReader(cfg.path, dataset_options={**options, "split": split},
                                            text_key=cfg.text_column, default_metadata={"split": split})
            for split in splits if split in SPLITS}
