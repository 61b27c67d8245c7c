"""Fine-tuning a pretrained causal LM for applications: instruction tuning (QA, translation, summaries,
dialogue) and named-entity recognition."""

from lightning_llm.tasks.config import GenEvalConfig, LoraConfig, NERDataConfig, SFTDataConfig
from lightning_llm.tasks.gen_eval import GenerationEval, answer
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.tasks.ner_data import NERDataModule
from lightning_llm.tasks.ner_metrics import EntityF1
from lightning_llm.tasks.ner_module import TokenClassificationModule
from lightning_llm.tasks.sft_data import SFTDataModule
from lightning_llm.tasks.sft_module import SFTModule

__all__ = ["EntityF1", "GenEvalConfig", "GenerationEval", "LoraConfig", "NERDataConfig", "NERDataModule",
           "SFTDataConfig", "SFTDataModule", "SFTModule", "TokenClassificationModule", "answer", "score"]
