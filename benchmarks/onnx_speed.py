"""ONNX in onnxruntime against transformers for generation: tokens/s side by side, and whether the greedy
texts agree, on a trained run's export.

    python -m benchmarks.onnx_speed --run outputs/DATE/TIME     # exports RUN/export to ONNX in a temp dir

The ONNX graph has no KV cache (each token recomputes the context); transformers' `generate` uses its cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lightning_llm.export.onnx import export_onnx
from lightning_llm.inference.generation import generate
from lightning_llm.inference.loading import load_model
from lightning_llm.inference.onnx_generation import onnx_generate

PROMPTS = ["To be, or not to be", "ROMEO.", "Enter the KING", "My lord, I"]


def timed(fn, new_tokens: int) -> tuple[float, list[str]]:
    fn(PROMPTS[0], 4)  # warm-up
    start = time.perf_counter()
    texts = [fn(p, new_tokens) for p in PROMPTS]
    return len(PROMPTS) * new_tokens / (time.perf_counter() - start), texts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="an llm-train run dir (its export/ is used)")
    p.add_argument("--new-tokens", type=int, default=64)
    args = p.parse_args()
    export = args.run / "export"
    model, tok = load_model(export)
    with tempfile.TemporaryDirectory() as tmp:
        diff = export_onnx(export, Path(tmp) / "onnx")["max_abs_diff"]
        hf_tps, hf_texts = timed(lambda s, n: generate(model, tok, [s], n, temperature=0)[0], args.new_tokens)
        ort_tps, ort_texts = timed(lambda s, n: onnx_generate(Path(tmp) / "onnx", s, n, temperature=0),
                                   args.new_tokens)
    same = sum(a == b for a, b in zip(hf_texts, ort_texts, strict=True))
    print(f"\n{export}: greedy, {len(PROMPTS)} prompts x up to {args.new_tokens} new tokens; "
          f"ONNX logits within {diff:.1e} of transformers'\n")
    print("| runtime | tokens/s | vs transformers | greedy texts equal |")
    print("|---|---|---|---|")
    print(f"| transformers generate (KV cache) | {hf_tps:.0f} | 1.00x | |")
    print(f"| onnxruntime, no cache | {ort_tps:.0f} | {ort_tps / hf_tps:.2f}x | {same}/{len(PROMPTS)} |")


if __name__ == "__main__":
    main()
