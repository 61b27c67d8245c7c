"""int8 quantization for CPU inference: size on disk, generation speed and perplexity change against fp32,
side by side in one process, on a trained run's export and its test split.

    python -m benchmarks.quantize --run outputs/DATE/TIME      # an llm-train run dir (export/ + metrics.json)

Each variant is produced the way a user produces it (`llm-export model_path=RUN/export quantize=...`)
and loaded back with `AutoModelForCausalLM.from_pretrained`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.pipeline import read_manifest
from lightning_llm.data.tokenizer import token_byte_lengths
from lightning_llm.evaluation.text import evaluate_text
from lightning_llm.loading import load_model
from lightning_llm.quantize import SCHEMES, quantize_export

PROMPTS = ["To be, or not to be", "ROMEO.", "Enter the KING", "My lord, I"]


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in (".safetensors", ".bin")) / 1e6


@torch.no_grad()
def tokens_per_s(model, tokenizer, new_tokens: int, repeats: int) -> float:
    ids = [tokenizer(p, return_tensors="pt").input_ids for p in PROMPTS]
    model.generate(ids[0], max_new_tokens=4, do_sample=False)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        for x in ids:
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return repeats * len(ids) * new_tokens / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="an llm-train run dir")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batches", type=int, default=None, help="test batches for perplexity (default: all)")
    args = p.parse_args()
    torch.manual_seed(0)
    export = args.run / "export"
    prepared = Path(json.loads((args.run / "metrics.json").read_text())["prepared_data"])
    manifest = read_manifest(prepared)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"fp32": export} | {s: quantize_export(export, Path(tmp) / s, s) for s in SCHEMES}
        for name, folder in variants.items():
            model, tok = load_model(folder)
            test = PackedDataset([prepared / "shards" / s["file"] for s in manifest["splits"]["test"]["shards"]],
                                 token_byte_lengths(tok))
            quality = evaluate_text(model, DataLoader(test, batch_size=16), args.max_batches)
            rows.append((name, size_mb(folder), tokens_per_s(model, tok, args.new_tokens, args.repeats),
                         quality["ppl"], quality["bpb"]))
    base = rows[0]
    print(f"\n{args.run}: test split of {prepared.name}, greedy generation of {args.new_tokens} tokens "
          f"x {len(PROMPTS)} prompts x {args.repeats}, {torch.get_num_threads()} threads\n")
    print("| variant | weights MB | size vs fp32 | gen tokens/s | speed vs fp32 | test ppl | ppl change | test bpb |")
    print("|---|---|---|---|---|---|---|---|")
    for name, mb, tps, ppl, bpb in rows:
        print(f"| {name} | {mb:.1f} | {mb / base[1]:.2f}x | {tps:.0f} | {tps / base[2]:.2f}x | {ppl:.3f} | "
              f"{(ppl / base[3] - 1) * 100:+.2f}% | {bpb:.4f} |")


if __name__ == "__main__":
    main()
