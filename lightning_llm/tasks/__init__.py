"""Fine-tuning a pretrained causal LM for applications: instruction tuning (QA, translation, summaries,
dialogue) and named-entity recognition."""

from lightning_llm.tasks.config import GenEvalConfig, LoraConfig, NERDataConfig, SFTDataConfig

__all__ = ["GenEvalConfig", "LoraConfig", "NERDataConfig", "SFTDataConfig"]
