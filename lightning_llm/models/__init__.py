"""Causal LMs from `transformers` configs, with configurable weight init."""

from lightning_llm.models.build import build_causal_lm, model_config, model_from_weights
from lightning_llm.models.init import InitConfig, init_weights

__all__ = ["InitConfig", "build_causal_lm", "init_weights", "model_config", "model_from_weights"]
