"""lightning_llm: pretrain and evaluate your own language model with Lightning, Hydra and W&B."""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"

# torchao (which transformers imports when it is installed) warns at import time that its CUDA kernels do not
# load on a CPU machine, and registers enums torch's pytree now warns about: noise on every command.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)

# Imported on first use: `import lightning_llm` stays cheap, the CLI pays for what it needs.
_LAZY = {
    "PretrainDataModule": "lightning_llm.data",
    "DataConfig": "lightning_llm.data",
    "TokenizerConfig": "lightning_llm.data",
    "CausalLMModule": "lightning_llm.training.module",
    "DistillationModule": "lightning_llm.training.distillation",
    "InitConfig": "lightning_llm.models",
    "OptimConfig": "lightning_llm.training.optim",
    "LanguageModelMetrics": "lightning_llm.evaluation.metrics",
    "export_hf": "lightning_llm.export",
    "load_model": "lightning_llm.inference",
    "generate": "lightning_llm.inference",
    "SFTDataModule": "lightning_llm.tasks",
    "SFTModule": "lightning_llm.tasks",
    "NERDataModule": "lightning_llm.tasks",
    "TokenClassificationModule": "lightning_llm.tasks",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightning_llm' has no attribute {name!r}")
