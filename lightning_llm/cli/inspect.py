"""`llm-inspect model_path=EXPORT text="..."` (or `text_file=`): a surprisal page, attention maps and the logit
lens of a model on a text, written to a folder whose path is printed."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from lightning_llm.cli._app import hydra_main
from lightning_llm.errors import UserError


def inspect(cfg: DictConfig) -> Path:
    from lightning_llm.evaluation.inspect import inspect_text
    from lightning_llm.inference.loading import load_model

    text = _text(cfg)
    model, tokenizer = load_model(cfg.model_path)
    out = Path(cfg.out or f"inspect-{time.strftime('%Y%m%d-%H%M%S')}")
    views = cfg.get("views") or {}
    layers = list(views["layers"]) if views.get("layers") else None
    written = inspect_text(model, tokenizer, text, out, cfg.top_k, title=f"Surprisal: {Path(cfg.model_path).name}",
                           maps=cfg.maps, layers=layers, view_tokens=int(views.get("tokens", 64)), view_layers=layers)
    print(f"Inspected {cfg.model_path} on {len(text):,} characters: {out.resolve()}")
    for path in written.values():
        print(f"  {path.name}")
    if cfg.maps:
        print(_cut_note(len(tokenizer(text, add_special_tokens=False)["input_ids"]), int(views.get("tokens", 64))))
    return out


def _cut_note(n: int, view_tokens: int) -> str:
    from lightning_llm.evaluation.inspect.attention import PNG_TOKENS

    if n <= PNG_TOKENS:
        return f"All {n} tokens are in the pages and the PNGs."
    pages = f"the pages show the last {view_tokens} (views.tokens)" if n > view_tokens else "the pages show all"
    return f"The text has {n} tokens: {pages}; the PNGs label the last {PNG_TOKENS}."


def _text(cfg: DictConfig) -> str:
    if cfg.text and cfg.text_file:
        raise UserError("give text= or text_file=, not both")
    if cfg.text_file:
        try:
            return Path(cfg.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read text_file={cfg.text_file}: {e}") from e
    if cfg.text is None:
        raise UserError('give the text to inspect: text="..." or text_file=PATH')
    return str(cfg.text)


main = hydra_main("inspect", inspect)


if __name__ == "__main__":
    main()
