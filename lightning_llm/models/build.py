"""Build any `transformers` causal LM from its config (no pretrained weights), then apply our init."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from lightning_llm.errors import UserError
from lightning_llm.models.init import InitConfig, init_weights


def model_config(arch: str, config: dict[str, Any], vocab_size: int,
                 eos_token_id: int | None = None) -> PretrainedConfig:
    """A `transformers` config of architecture `arch` (a `model_type` such as llama, gpt2, qwen2, mistral)."""
    overrides = dict(config)
    overrides.setdefault("vocab_size", vocab_size)
    if overrides["vocab_size"] < vocab_size:
        raise UserError(f"model.config.vocab_size={overrides['vocab_size']} is smaller than the tokenizer's "
                        f"{vocab_size} tokens: remove the key (it follows the tokenizer) or raise it")
    if eos_token_id is not None:
        overrides.update(bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id)
    try:
        return AutoConfig.for_model(arch, **overrides)
    except ValueError as e:
        raise UserError(f"model.arch={arch!r}: {str(e).splitlines()[0]}") from e


def build_causal_lm(config: PretrainedConfig, init: InitConfig) -> PreTrainedModel:
    try:
        model = AutoModelForCausalLM.from_config(config)
    except ValueError as e:
        raise UserError(f"{config.model_type} has no causal-LM head in transformers: {str(e).splitlines()[0]}") from e
    init_weights(model, init, num_layers=config.num_hidden_layers)
    return model


def model_from_weights(config: PretrainedConfig, state_dict: dict, prefix: str = "model.") -> PreTrainedModel:
    """A plain model of `config` holding the weights stored under `prefix` (a LightningModule's state dict)."""
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict({k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)})
    return model
