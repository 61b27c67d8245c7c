"""Per-token surprisal: how many bits each token costs the model, and what it expected instead."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lightning_llm.errors import UserError


@dataclass
class TokenSurprisal:
    """A token of the text, its cost in bits (None for the first token: nothing predicts it) and the top
    alternatives the model gave at its position, as (token text, probability)."""

    text: str
    bits: float | None
    top: list[tuple[str, float]] = field(default_factory=list)


def encode_text(tokenizer, text: str, context: int | None) -> list[int]:
    """The text's token ids; an empty text or one longer than the model's context is refused in one line."""
    if not text or not text.strip():
        raise UserError("empty text: give some text to inspect (text=... or text_file=...)")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if context and len(ids) > context:
        raise UserError(f"the text is {len(ids)} tokens, longer than the model's context of {context}: inspect a "
                        "shorter part (the maps and the lens are over one context window, so it is refused, not "
                        "windowed)")
    return ids


@torch.no_grad()
def surprisal(model, tokenizer, text: str, top_k: int = 5) -> list[TokenSurprisal]:
    """Every token of `text` with its surprisal in bits and the model's `top_k` guesses at its position."""
    ids = encode_text(tokenizer, text, getattr(model.config, "max_position_embeddings", None))
    input_ids = torch.tensor([ids], device=model.device)
    logprobs = torch.log_softmax(model(input_ids=input_ids).logits[0].float(), dim=-1)
    pieces = token_texts(tokenizer, ids)
    out = [TokenSurprisal(pieces[0], None)]
    for i in range(1, len(ids)):
        row = logprobs[i - 1]
        top = torch.topk(row, min(top_k, row.numel()))
        alternatives = [(tokenizer.decode([int(t)]), math.exp(float(v))) for v, t in zip(top.values, top.indices,
                                                                                          strict=True)]
        out.append(TokenSurprisal(pieces[i], -float(row[ids[i]]) / math.log(2), alternatives))
    return out


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """The text each token adds, so that the pieces join to the decoded text (byte-level BPE splits
    characters across tokens: those bytes go to the token that completes them)."""
    pieces, previous = [], ""
    for i in range(1, len(ids) + 1):
        decoded = tokenizer.decode(ids[:i])
        if decoded.endswith("\ufffd") and i < len(ids):
            pieces.append("")
            continue
        pieces.append(decoded[len(previous):])
        previous = decoded
    return pieces
