"""Fine-tuning a pretrained causal LM for applications: instruction tuning (QA, translation, summaries,
dialogue), named-entity recognition, and preference alignment (DPO and its cousins)."""

from lightning_llm.tasks.config import (
    DPOConfig,
    GenEvalConfig,
    LoraConfig,
    NERDataConfig,
    PreferenceDataConfig,
    SFTDataConfig,
)
from lightning_llm.tasks.dpo_module import DPOModule
from lightning_llm.tasks.gen_eval import GenerationEval, answer
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.tasks.ner_data import NERDataModule
from lightning_llm.tasks.ner_metrics import EntityF1
from lightning_llm.tasks.ner_module import TokenClassificationModule
from lightning_llm.tasks.preference_data import PreferenceDataModule
from lightning_llm.tasks.sft_data import SFTDataModule
from lightning_llm.tasks.sft_module import SFTModule

__all__ = ["DPOConfig", "DPOModule", "EntityF1", "GenEvalConfig", "GenerationEval", "LoraConfig", "NERDataConfig",
           "NERDataModule", "PreferenceDataConfig", "PreferenceDataModule", "SFTDataConfig", "SFTDataModule",
           "SFTModule", "TokenClassificationModule", "answer", "score"]
