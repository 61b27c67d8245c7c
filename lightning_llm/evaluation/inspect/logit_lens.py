"""The logit lens: read the residual stream after every layer through the model's final norm and head, and see
what it would predict there."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lightning_llm.errors import UserError
from lightning_llm.evaluation.inspect.surprisal import encode_text


def final_norm(model) -> torch.nn.Module:
    """The norm before the head (Llama-style `model.norm`, GPT-2's `transformer.ln_f`, ...)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm", "ln_final"):
        if isinstance(getattr(decoder, name, None), torch.nn.Module):
            return getattr(decoder, name)
    raise UserError(f"{type(model).__name__}: no final norm found for the logit lens")


@torch.no_grad()
def logit_lens(model, tokenizer, text: str) -> torch.Tensor:
    """[layers, tokens, vocab] log-probabilities of the next token, read after each layer. The last layer's
    hidden state already went through the final norm in `transformers`; the others go through it here."""
    ids = encode_text(tokenizer, text, getattr(model.config, "max_position_embeddings", None))
    out = model(input_ids=torch.tensor([ids], device=model.device), output_hidden_states=True)
    norm, head = final_norm(model), model.get_output_embeddings()
    layers = []
    hidden = out.hidden_states[1:]
    for i, h in enumerate(hidden):
        h = h if i == len(hidden) - 1 else norm(h)
        layers.append(torch.log_softmax(head(h)[0].float(), dim=-1))
    return torch.stack(layers).cpu()


def save_logit_lens(lens: torch.Tensor, tokenizer, ids: list[int], out_dir: Path) -> tuple[Path, Path]:
    """A heatmap PNG (layers x positions, shaded by the top guess's probability, labelled with it: the last
    PNG_TOKENS positions of a longer text) and a JSON table of every layer's top guess at every position."""
    import matplotlib

    from lightning_llm.evaluation.inspect.attention import PNG_TOKENS

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    probs, top = lens.exp().max(-1)
    words = [[tokenizer.decode([int(t)]) for t in row] for row in top]
    inputs = [tokenizer.decode([i]) for i in ids]
    table = {"tokens": inputs, "layers": [
        [{"top": w, "p": round(float(p), 4)} for w, p in zip(row_w, row_p, strict=True)]
        for row_w, row_p in zip(words, probs, strict=True)]}
    json_path = out_dir / "logit_lens.json"
    json_path.write_text(json.dumps(table, ensure_ascii=False, indent=1))
    layers, total = probs.shape
    start = max(0, total - PNG_TOKENS)
    n = total - start
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * n), max(3, 0.45 * layers + 1.5)))
    ax.imshow(probs[:, start:].numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for layer in range(layers):
        for pos in range(n):
            ax.text(pos, layer, words[layer][start + pos].replace("\n", "\\n")[:8], ha="center", va="center",
                    fontsize=6, color="white" if probs[layer, start + pos] > 0.5 else "black")
    ax.set_xticks(range(n), [t.replace("\n", "\\n") for t in inputs[start:]], rotation=90, fontsize=6)
    ax.set_yticks(range(layers), [f"layer {i}" for i in range(layers)], fontsize=7)
    cut = f", the last {n} of {total} positions" if start else ""
    ax.set_title(f"logit lens: the top next-token guess after each layer (shade: its probability{cut})", fontsize=9)
    fig.tight_layout()
    png_path = out_dir / "logit_lens.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path, json_path
