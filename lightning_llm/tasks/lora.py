"""LoRA adapters through `peft` (a dependency: LoRA is what `auto` picks for a real base)."""

from __future__ import annotations

from transformers import PreTrainedModel

from lightning_llm.errors import UserError
from lightning_llm.tasks.config import LoraConfig


def add_lora(model: PreTrainedModel, cfg: LoraConfig):
    """Freeze `model` and wrap it with trainable low-rank adapters; `cfg.r == 0` leaves it as is."""
    if cfg.r <= 0:
        return model
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model
    except ImportError:
        raise UserError("lora.r>0 needs peft, which lightning_llm depends on: pip install peft (or set lora.r=0 "
                        "for full fine-tuning)") from None
    targets = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    return get_peft_model(model, PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                                target_modules=targets, task_type="CAUSAL_LM"))


def merged(model) -> PreTrainedModel:
    """A plain `transformers` model with the adapters folded into its weights (a copy; training is untouched)."""
    if not hasattr(model, "merge_and_unload"):
        return model
    import copy

    return copy.deepcopy(model).merge_and_unload()
