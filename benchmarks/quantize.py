"""int8 quantization for CPU inference: size on disk, generation speed and perplexity change against fp32,
side by side in one process, on a trained run's export and its test split.

    python -m benchmarks.quantize --run outputs/DATE/TIME      # an llm-train run dir (export/ + metrics.json)
    python -m benchmarks.quantize --run ... --large             # + a 12-layer/768-dim model (random weights)

The int8 folder is made the way a user makes it (`llm-export model_path=RUN/export quantize=int8`) and run
two ways: as `transformers` + torchao load it, and on our CPU int8 kernels (what llm-generate/llm-eval use).
The `--large` table shows where CPU decoding goes at GPT-2-small scale (speed and size only: its weights
are random, so perplexity means nothing there).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lightning_llm.data.datamodule import split_dataset
from lightning_llm.evaluation.text import evaluate_text
from lightning_llm.export.quantize import quantize_export
from lightning_llm.inference.loading import load_model

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


def variants(export: Path, tmp: Path):
    """(name, folder, model, tokenizer) for fp32 and both ways of running the int8 export."""
    int8 = quantize_export(export, tmp / "int8", "int8")
    yield ("fp32", export, *load_model(export))
    yield ("int8, transformers + torchao", int8, *load_model(int8, cpu_int8=False))
    yield ("int8, our CPU kernels", int8, *load_model(int8))


def table(rows: list[tuple], quality: bool) -> None:
    base = rows[0]
    print("| variant | weights MB | size vs fp32 | gen tokens/s | speed vs fp32 |"
          + (" test ppl | ppl change | test bpb |" if quality else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if quality else ""))
    for name, mb, tps, ppl, bpb in rows:
        print(f"| {name} | {mb:.1f} | {mb / base[1]:.2f}x | {tps:.0f} | {tps / base[2]:.2f}x |"
              + (f" {ppl:.3f} | {(ppl / base[3] - 1) * 100:+.2f}% | {bpb:.4f} |" if quality else ""))


def large_export(tokenizer_src: Path, out_dir: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lightning_llm.export.hf import export_hf

    config = LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=512, tie_word_embeddings=True)
    return export_hf(LlamaForCausalLM(config), AutoTokenizer.from_pretrained(tokenizer_src), out_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="an llm-train run dir")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batches", type=int, default=None, help="test batches for perplexity (default: all)")
    p.add_argument("--large", action="store_true", help="also a 12-layer/768-dim Llama (random weights)")
    args = p.parse_args()
    torch.manual_seed(0)
    prepared = Path(json.loads((args.run / "metrics.json").read_text())["prepared_data"])
    rows, large = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder, model, tok in variants(args.run / "export", Path(tmp)):
            test = split_dataset(prepared, "test", tok)
            quality = evaluate_text(model, DataLoader(test, batch_size=16), args.max_batches)
            rows.append((name, size_mb(folder), tokens_per_s(model, tok, args.new_tokens, args.repeats),
                         quality["ppl"], quality["bpb"]))
        if args.large:
            big = large_export(args.run / "export", Path(tmp) / "large")
            for name, folder, model, tok in variants(big, Path(tmp) / "large-q"):
                large.append((name, size_mb(folder), tokens_per_s(model, tok, args.new_tokens, 1), 0, 0))
    print(f"\n{args.run}: test split of {prepared.name}, greedy generation of {args.new_tokens} tokens "
          f"x {len(PROMPTS)} prompts x {args.repeats}, {torch.get_num_threads()} threads\n")
    table(rows, quality=True)
    if large:
        print("\n12 layers, 768 dims, vocab 32000 (110M parameters, random weights): speed and size only\n")
        table(large, quality=False)


if __name__ == "__main__":
    main()
