"""Attention maps: every layer's and head's attention over the tokens of a text, their entropy, PNG grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from lightning_llm.evaluation.inspect.surprisal import encode_text, token_texts


@torch.no_grad()
def attention_maps(model, tokenizer, text: str) -> torch.Tensor:
    """[layers, heads, tokens, tokens] attention probabilities (eager attention: fused kernels return none)."""
    ids = encode_text(tokenizer, text, getattr(model.config, "max_position_embeddings", None))
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(input_ids=torch.tensor([ids], device=model.device), output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    if not out.attentions or out.attentions[0] is None:
        from lightning_llm.errors import UserError

        raise UserError(f"{type(model).__name__} returns no attention weights: inspect a Hugging Face export")
    return torch.stack([a[0].float() for a in out.attentions]).cpu()


def attention_entropy(maps: torch.Tensor) -> torch.Tensor:
    """[layers, heads] mean entropy in bits of each query's attention (0: one token; log2(n): uniform)."""
    p = maps.clamp_min(1e-12)
    return -(maps * p.log2()).sum(-1).mean(-1)


PNG_TOKENS = 40  # the most tokens whose text a PNG can still show on its axes


def save_attention_grids(maps: torch.Tensor, tokens: list[str], out_dir: Path,
                         layers: list[int] | None = None) -> list[Path]:
    """One PNG per layer (of `layers`, default all), its heads as panels, the tokens' text on the axes: of the
    last PNG_TOKENS tokens when the text is longer (the title says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    entropy = attention_entropy(maps)
    count, heads, total, _ = maps.shape
    start = max(0, total - PNG_TOKENS)
    maps, n = maps[:, :, start:, start:], total - start
    cols = min(heads, 4)
    rows = math.ceil(heads / cols)
    labels = [t.replace("\n", "\\n") for t in tokens[start:]]
    paths = []
    for layer in layers if layers is not None else range(count):
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
        for h in range(rows * cols):
            ax = axes[h // cols][h % cols]
            if h >= heads:
                ax.axis("off")
                continue
            ax.imshow(maps[layer, h].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"head {h}  ({entropy[layer, h]:.2f} bits)", fontsize=8)
            ax.set_xticks(range(n), labels, rotation=90, fontsize=5)
            ax.set_yticks(range(n), labels, fontsize=5)
        cut = f" (the last {n} of {total} tokens)" if start else ""
        fig.suptitle(f"layer {layer}: attention of each token (rows) over earlier tokens (columns){cut}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"attention_layer_{layer:02d}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def tokens_of(tokenizer, text: str, context: int | None) -> list[str]:
    return token_texts(tokenizer, encode_text(tokenizer, text, context))
