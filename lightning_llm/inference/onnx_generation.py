"""Text generation from an ONNX export (`llm-export format=onnx`) in onnxruntime, without torch or transformers'
models: what a deployment that only ships `model.onnx` and the tokenizer runs.

The graph takes the whole sequence each step (no KV cache), so a step costs a forward over the full context:
fine for the short contexts of small models, quadratic for long generations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lightning_llm.inference.generation import check_prompt


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 0.8, top_k: int | None = 50,
                top_p: float | None = None) -> int:
    """Greedy (`temperature=0`) or temperature / top-k / top-p sampling of one token from last-position logits."""
    if temperature <= 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / temperature
    if top_k:
        logits[logits < np.sort(logits)[-min(top_k, logits.size)]] = -np.inf
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs)
        keep = np.cumsum(probs[order]) - probs[order] < top_p  # the smallest set reaching top_p
        probs[order[~keep]] = 0
        probs /= probs.sum()
    return int(rng.choice(probs.size, p=probs))


def onnx_session(path: str | Path):
    """An onnxruntime session on the CPU for `model.onnx` at `path`."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_generate(folder: str | Path, prompt: str, max_new_tokens: int = 64, temperature: float = 0.8,
                  top_k: int | None = 50, top_p: float | None = None, seed: int | None = None,
                  on_text: Callable[[str], None] | None = None) -> str:
    """Continue `prompt` with the ONNX model in `folder`; `on_text` receives the text as it grows."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    session = onnx_session(folder / "model.onnx")
    ids = tokenizer(prompt).input_ids
    check_prompt(prompt, len(ids), max_new_tokens, config.get("max_position_embeddings"))
    rng = np.random.default_rng(seed)
    eos = config.get("eos_token_id")
    start = len(ids)
    for _ in range(max_new_tokens):
        x = np.asarray([ids], dtype=np.int64)
        logits = session.run(["logits"], {"input_ids": x, "attention_mask": np.ones_like(x)})[0][0, -1]
        ids.append(sample_next(logits, rng, temperature, top_k, top_p))
        if on_text is not None:
            on_text(tokenizer.decode(ids[start:], skip_special_tokens=True))
        if ids[-1] == eos:
            break
    return tokenizer.decode(ids, skip_special_tokens=True)
