"""`llm-ner MODEL TEXT...`: print the named entities a token-classification export finds in each text.

MODEL is the export/ folder of `llm-train recipe=ner` (or any Hugging Face token-classification folder); it
runs through `transformers.pipeline("token-classification", aggregation_strategy="simple")`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_llm.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="llm-ner", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="a token-classification folder (the export/ of llm-train recipe=ner)")
    p.add_argument("texts", nargs="+", help="text to tag; '-' reads one text from stdin")
    p.add_argument("--min-score", type=float, default=0.0, help="leave out entities scored below this")
    return p.parse_args(argv)


def entities(model: str | Path, texts: list[str], min_score: float = 0.0) -> list[list[dict]]:
    """The entities of each text: {entity_group, word, start, end, score}."""
    from transformers import AutoConfig, pipeline

    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: no config.json; give the export/ folder of an llm-train recipe=ner run")
    config = AutoConfig.from_pretrained(folder)
    if not any("TokenClassification" in a for a in config.architectures or []):
        raise UserError(f"{folder} holds a {config.architectures} model, not a token classifier; give the export/ "
                        "of an llm-train recipe=ner run")
    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy="simple", device="cpu")
    out = []
    for text in texts:
        if not text.strip():
            raise UserError("empty text: give some text to tag")
        out.append([{**e, "score": float(e["score"]), "word": text[e["start"]:e["end"]]}
                    for e in tagger(text) if e["score"] >= min_score])
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    texts = [sys.stdin.read() if t == "-" else t for t in args.texts]
    try:
        found = entities(args.model, texts, args.min_score)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for text, ents in zip(texts, found, strict=True):
        print(text)
        for e in ents:
            print(f"  {e['entity_group']:<8} {e['word']!r} [{e['start']}:{e['end']}] {e['score']:.2f}")
        if not ents:
            print("  (no entities)")


if __name__ == "__main__":
    main()
