"""Export to a Hugging Face folder (safetensors + config + tokenizer) that `transformers` loads as is."""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from lightning_llm.data.chat import end_of_turn_id, with_chat_template
from lightning_llm.inference.checkpoint import load_checkpoint
from lightning_llm.io import atomic_dir


def export_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path,
              max_length: int | None = None) -> Path:
    """Write `config.json`, `model.safetensors`, `generation_config.json` and the tokenizer files (with our
    chat template when the tokenizer has none, so `apply_chat_template` and pipelines work)."""
    out_dir = Path(out_dir)
    with_chat_template(tokenizer)
    eos = tokenizer.eos_token_id
    # generation stops at EOS and at the chat template's end-of-turn token (<|im_end|> in ChatML), if another
    stops = list(dict.fromkeys(i for i in (eos, end_of_turn_id(tokenizer)) if i is not None))
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=stops[0] if len(stops) == 1 else stops,
                                               pad_token_id=eos if tokenizer.pad_token_id is None
                                               else tokenizer.pad_token_id,
                                               do_sample=True, temperature=0.8, top_k=50, max_new_tokens=64)
    if max_length:
        tokenizer.model_max_length = max_length
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def export_checkpoint(ckpt: str | Path, out_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """A Lightning checkpoint of `llm-train` -> a Hugging Face folder, with the tokenizer its run trained with."""
    model, tok = load_checkpoint(ckpt, tokenizer)
    return export_hf(model, tok, out_dir, max_length=model.config.max_position_embeddings)
