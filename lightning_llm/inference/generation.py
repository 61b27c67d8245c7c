"""Sample text from a causal LM (KV cache through `generate`)."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lightning_llm.errors import UserError


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int = 64,
             temperature: float = 0.8, top_k: int | None = 50, top_p: float | None = None, seed: int | None = None,
             streamer=None, lockstep: bool = False) -> list[str]:
    """Continue each prompt; returns prompt + continuation. `temperature=0` is greedy.

    With a `seed`, sampling draws from its own random state: the caller's (a training run's) is left as it
    was, so sampling during training does not change what training does next.
    `lockstep`: every call runs exactly `max_new_tokens` forward passes (the text still ends at EOS), as
    processes of a sharded model must, each forward being a collective.
    """
    args = (model, tokenizer, prompts, max_new_tokens, temperature, top_k, top_p, streamer, lockstep)
    if seed is None:
        return _generate(*args)
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _generate(*args)


def _generate(model, tokenizer, prompts, max_new_tokens, temperature, top_k, top_p, streamer, lockstep) -> list[str]:
    limit = getattr(model.config, "max_position_embeddings", None)
    outs = []
    was_training = model.training
    model.eval()
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
        check_prompt(prompt, ids.shape[1], max_new_tokens, limit)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p} \
            if temperature > 0 else {"do_sample": False}
        if lockstep:  # an id no token has: no stop at EOS, the text is cut there instead
            sampling["eos_token_id"] = -1
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, streamer=streamer, **sampling)[0]
        if lockstep and (eos := (out[ids.shape[1]:] == tokenizer.eos_token_id).nonzero()).numel():
            out = out[: ids.shape[1] + int(eos[0]) + 1]
        outs.append(tokenizer.decode(out, skip_special_tokens=True))
    model.train(was_training)
    return outs


def check_prompt(prompt: str, n_tokens: int, max_new_tokens: int, context: int | None) -> None:
    """An empty prompt, or one that leaves no room for `max_new_tokens` in the context, is a clear error."""
    if not prompt:
        raise UserError("empty prompt: give some text to continue, e.g. prompt='To be, or not'")
    if context and n_tokens + max_new_tokens > context:
        raise UserError(f"prompt of {n_tokens} tokens + max_new_tokens={max_new_tokens} exceeds the model's "
                        f"context of {context} tokens: shorten the prompt or lower max_new_tokens")
