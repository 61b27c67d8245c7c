"""What a fine-tuning method is to `llm-train`: one `FinetuneTask` per method (sft, ner, dpo, ...), looked up by
`task=<name>`. Each builds its own DataModule, module, baselines and evaluation callbacks from the run's config,
and says what export does with it; `cli/finetune.py` runs any of them the same way (fit, validate, test, export,
metrics.json). A new method is a new module in `tasks/` and one line in `TASKS`, not a new branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from lightning_llm.errors import UserError


@dataclass
class TaskParts:
    """What a task builds for one run."""

    datamodule: L.LightningDataModule
    module: L.LightningModule
    baselines: dict[str, dict[str, float]]  # test-split scores before fine-tuning and of trivial answerers
    callbacks: list[L.Callback] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # files besides metrics.json the run writes (closing line)
    data_stats: dict[str, Any] | None = None  # metrics.json "data": examples, rows, truncated/dropped per split


class FinetuneTask:
    """One fine-tuning method. Subclasses set `name` and implement `build`."""

    name = ""
    gguf = True  # whether export.gguf applies (a causal LM llama.cpp can run)

    def build(self, cfg: DictConfig, init_from: Path, run_dir: Path, resumed: bool) -> TaskParts:
        raise NotImplementedError

    def export_model(self, module: L.LightningModule):
        """The plain `transformers` model the run exports: LoRA adapters merged where there are any."""
        merged = getattr(module, "merged_model", None)
        return merged() if callable(merged) else module.model

    def check_export(self, cfg: DictConfig) -> None:
        if not self.gguf and (cfg.get("export") or {}).get("gguf"):
            raise UserError(f"export.gguf: a task={self.name} model is not a causal LM llama.cpp runs; drop "
                            "export.gguf (export/ holds the model for transformers)")


def plain(node: Any) -> Any:
    """A config node as plain Python containers (what the components take)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def task_data(cfg: DictConfig) -> dict:
    """The task's data keys. The fine-tuning recipes switch the cleaning group off; `data=sft` composed by hand
    still carries `cleaning`, which task data (not pretraining text) does not use."""
    data = plain(cfg.data)
    data.pop("cleaning", None)
    return data
