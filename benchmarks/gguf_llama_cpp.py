"""GGUF exports in llama.cpp beside our HF export in transformers and our int8 export, in one run: file size,
load time, decoding tokens/s, perplexity on held-out text and the mean absolute difference of the next tokens'
log-probs from the HF export's, per written type.

    bash scripts/llama_cpp.sh                    # llama-cpp-python, built once per machine (not a dependency)
    python -m benchmarks.gguf_llama_cpp          # the built-in real base (SmolLM2-135M-Instruct)
    python -m benchmarks.gguf_llama_cpp --model RUN/export --threads 2

Perplexity: the same held-out text (the plays the built-in QA/NER data hold out), the same tokens, scored in
windows of 512 tokens by both runtimes. Decoding: greedy, 64 new tokens after a short prompt, one sequence,
`--threads` threads on both sides (transformers with its KV cache, llama.cpp's own).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

WINDOW, NEW_TOKENS, PROMPT = 512, 64, "The king said to his daughter"  # WINDOW: at most, see _window


def _window(folder: Path) -> int:
    """512 tokens, or the model's context where shorter (our default recipe trains on 128): past it both runtimes
    would score positions the model never saw."""
    from transformers import AutoConfig

    return min(WINDOW, getattr(AutoConfig.from_pretrained(folder), "max_position_embeddings", WINDOW))


def _windows(ids: list[int], window: int) -> list[list[int]]:
    return [ids[i:i + window] for i in range(0, len(ids) - 1, window) if len(ids[i:i + window]) > 1]


def _ppl(nats: list[float]) -> float:
    return math.exp(sum(nats) / len(nats))


def hf_row(folder: Path, ids: list[int], prompt: list[int], window: int, int8: bool = False) -> dict:
    from lightning_llm.inference.loading import load_model

    t0 = time.perf_counter()
    model, _ = load_model(folder, dtype=torch.float32) if not int8 else load_model(folder)
    load = time.perf_counter() - t0
    nats: list[float] = []
    with torch.no_grad():
        for w in _windows(ids, window):
            lp = torch.log_softmax(model(torch.tensor([w])).logits[0].float(), -1)
            nats += (-lp[torch.arange(len(w) - 1), torch.tensor(w[1:])]).tolist()
        model.generate(torch.tensor([prompt]), max_new_tokens=4, do_sample=False)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                             do_sample=False)
        speed = (out.shape[1] - len(prompt)) / (time.perf_counter() - t0)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6
    return {"mb": size, "load_s": load, "tok_s": speed, "ppl": _ppl(nats), "nats": np.asarray(nats)}


def cpp_row(path: Path, ids: list[int], prompt: list[int], threads: int, window: int) -> dict:
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=window, n_threads=threads, n_batch=window, logits_all=True,
                          verbose=False)  # llama.cpp's defaults (f16 KV cache), as a user runs it
    load = time.perf_counter() - t0
    nats: list[float] = []
    for w in _windows(ids, window):
        llm.reset()
        llm.eval(w)
        logits = np.asarray(llm.scores[: len(w)], dtype=np.float64)
        lp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        nats += (-lp[np.arange(len(w) - 1), w[1:]]).tolist()
    decode = llama_cpp.Llama(model_path=str(path), n_ctx=window, n_threads=threads, verbose=False)
    n, t0 = 0, time.perf_counter()
    for _ in decode.generate(prompt, temp=0.0, top_k=1):
        n += 1
        if n == NEW_TOKENS:
            break
    speed = n / (time.perf_counter() - t0)
    return {"mb": path.stat().st_size / 1e6, "load_s": load, "tok_s": speed, "ppl": _ppl(nats),
            "nats": np.asarray(nats)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="an HF folder, or a built-in name")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--types", default="f32,f16,bf16,q8_0,q4_0")
    p.add_argument("--text-bytes", type=int, default=12_000)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AutoTokenizer

    from lightning_llm.export.gguf import export_gguf
    from lightning_llm.export.quantize import quantize_export
    from lightning_llm.models.pretrained import resolve_model
    from lightning_llm.tasks.forgetting import reference_text
    from lightning_llm.training.precision import host_description

    folder = resolve_model(a.model, key="--model")
    tok = AutoTokenizer.from_pretrained(folder)
    text, where = reference_text(None, a.text_bytes)
    ids, prompt = tok(text).input_ids, tok(PROMPT).input_ids
    window = _window(folder)
    print(f"host: {host_description(torch.device('cpu'))}; model {a.model}; perplexity on "
          f"{len(ids):,} tokens of {where} in windows of {window}; decoding {NEW_TOKENS} greedy tokens\n")
    print("| runtime | weights | file MB | load s | decode tokens/s | perplexity | vs HF fp32 | mean abs. dlogp vs HF "
          "|")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gguf-bench-") as tmp:
        ref = hf_row(folder, ids, prompt, window)
        rows.append(("transformers", "HF export fp32", ref))
        int8 = quantize_export(folder, Path(tmp) / "int8")
        rows.append(("transformers + our int8 kernels", "int8 export", hf_row(int8, ids, prompt, window, int8=True)))
        for kind in a.types.split(","):
            path = export_gguf(folder, Path(tmp) / f"m-{kind}.gguf", kind)["out"]
            rows.append(("llama.cpp (llama-cpp-python)", f"GGUF {kind}", cpp_row(path, ids, prompt, a.threads, window)))
            path.unlink()
        for runtime, weights, r in rows:
            # the next tokens' log-probs against the HF export's (nats, mean over every scored token)
            dlogp = float(np.abs(r["nats"] - ref["nats"]).mean())
            print(f"| {runtime} | {weights} | {r['mb']:.1f} | {r['load_s']:.2f} | {r['tok_s']:.1f} | {r['ppl']:.3f} | "
                  f"{r['ppl'] / ref['ppl']:.4f} | {dlogp:.1e} |", flush=True)


if __name__ == "__main__":
    main()
