"""Everything `llm-inspect` writes for one text, as one library call."""

from __future__ import annotations

from pathlib import Path

from lightning_llm.evaluation.inspect.attention import attention_entropy, attention_maps, save_attention_grids
from lightning_llm.evaluation.inspect.logit_lens import logit_lens, save_logit_lens
from lightning_llm.evaluation.inspect.page import surprisal_page
from lightning_llm.evaluation.inspect.surprisal import encode_text, surprisal, token_texts
from lightning_llm.evaluation.inspect.views import attention_data, attention_page, layer_range, lens_data, lens_page
from lightning_llm.io import write_json


def inspect_text(model, tokenizer, text: str, out_dir: str | Path, top_k: int = 5, title: str = "Surprisal",
                 maps: bool = True, layers: list[int] | None = None, view_tokens: int = 64,
                 view_layers: list[int] | None = None) -> dict[str, Path]:
    """Write surprisal.html, attention.html and logit_lens.html (the last `view_tokens` tokens, the layers
    `view_layers`, default all), attention_layer_XX.png (of `layers`, default all), attention_entropy.json,
    logit_lens.png and logit_lens.json under `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokens = surprisal(model, tokenizer, text, top_k)
    page = out / "surprisal.html"
    page.write_text(surprisal_page(tokens, title), encoding="utf-8")
    written = {"surprisal": page}
    if not maps:
        return written
    ids = encode_text(tokenizer, text, getattr(model.config, "max_position_embeddings", None))
    attention = attention_maps(model, tokenizer, text)
    layers = layer_range(attention.shape[0], layers) if layers else None  # checked before anything is drawn
    for path in save_attention_grids(attention, token_texts(tokenizer, ids), out, layers):
        written[path.stem] = path
    entropy = out / "attention_entropy.json"
    write_json(entropy, {"bits": [[round(float(x), 4) for x in row] for row in attention_entropy(attention)]})
    written["attention_entropy"] = entropy
    tokens = token_texts(tokenizer, ids)
    written["attention_page"] = _write(out / "attention.html", attention_page(
        attention_data(attention, tokens, view_tokens, view_layers), title.replace("Surprisal", "Attention")))
    lens = logit_lens(model, tokenizer, text)
    written["logit_lens_page"] = _write(out / "logit_lens.html", lens_page(
        lens_data(lens, tokenizer, ids, top_k, view_tokens, view_layers), title.replace("Surprisal", "Logit lens")))
    written["logit_lens"], written["logit_lens_json"] = save_logit_lens(lens, tokenizer, ids, out)
    return written


def _write(path: Path, page: str) -> Path:
    path.write_text(page, encoding="utf-8")
    return path
