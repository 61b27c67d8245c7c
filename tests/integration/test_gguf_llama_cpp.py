"""GGUF exports run in the real client: llama.cpp through llama-cpp-python (built once per machine by
scripts/llama_cpp.sh, which .ci/run calls). The real base SmolLM2-135M-Instruct in every written type, and our own
trained model with our own tokenizer in f32: the same token ids as transformers, next-token log-probs, greedy
continuations and perplexity against the HF export in transformers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: bash scripts/llama_cpp.sh")

# held out from the built-in data: not a play the QA/NER sets or the reference text use
HELD_OUT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
            "arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. "
            "To die: to sleep; no more; and by a sleep to say we end the heart-ache and the thousand natural shocks "
            "that flesh is heir to, 'tis a consummation devoutly to be wish'd. Numbers: 3 33 333 1599, 2026!")
# How close llama.cpp must come, per type, in mean |log-prob difference| of the next tokens (nats). f32/f16: to
# the HF export in transformers (the issue's bounds). bf16/q8_0/q4_0: to the same file run by transformers' GGUF
# loader (the same rounded weights, dequantized), since on this base the rounding alone moves log-probs by more than
# the issue allowed (measured: bf16 0.021, q8_0 0.106, q4_0 1.30 nats), and llama.cpp's block kernels also round
# the activations (measured against the same weights: bf16 0.021, q8_0 0.123, q4_0 0.141). A wrong file (a Q/K
# permutation, a shifted vocabulary) is off by nats, far outside these.
AGAINST_HF = {"f32": 1e-3, "f16": 1e-2}
AGAINST_FILE = {"bf16": 0.04, "q8_0": 0.2, "q4_0": 0.25}


def _hf(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(folder))


def _hf_logprobs(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, -1).numpy()


def _cpp(path: Path):
    # an f32 KV cache: llama.cpp's default f16 cache alone moves log-probs by ~3e-3 nats (measured), more than the
    # f32 check allows; the file is what is under test, not the cache
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, logits_all=True, verbose=False, seed=0,
                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False)


def _cpp_logprobs(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


def _next_token_lp(lp: np.ndarray, ids: list[int]) -> np.ndarray:
    return lp[np.arange(len(ids) - 1), ids[1:]]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from lightning_llm.models.pretrained import resolve_model

    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def reference(smollm2):
    """The HF export in transformers, its tokenizer, and its next-token log-probs of the held-out passage (once)."""
    model, tok = _hf(smollm2)
    ids = tok(HELD_OUT).input_ids
    return model, tok, ids, _next_token_lp(_hf_logprobs(model, ids), ids)


@pytest.mark.parametrize("kind", ["f32", "f16", "bf16", "q8_0", "q4_0"])
def test_llama_cpp_runs_each_type_of_the_real_base_as_transformers_does(smollm2, reference, tmp_path, kind):
    from lightning_llm.export.gguf import export_gguf

    model, tok, ids, a = reference
    path = export_gguf(smollm2, tmp_path / f"smollm2-{kind}.gguf", kind)["out"]
    llm = _cpp(path)
    assert llm.tokenize(HELD_OUT.encode(), add_bos=True, special=False) == ids  # same ids, BOS as transformers adds
    b = _next_token_lp(_cpp_logprobs(llm, ids), ids)
    if kind in AGAINST_HF:
        ref, tol = a, AGAINST_HF[kind]
    else:
        from transformers import AutoModelForCausalLM

        same = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        ref, tol = _next_token_lp(_hf_logprobs(same, ids), ids), AGAINST_FILE[kind]
    diff = float(np.abs(ref - b).mean())
    ppl_ref, ppl_cpp = math.exp(-ref.mean()), math.exp(-b.mean())
    print(f"{kind}: mean |dlogp| {diff:.2e} nats, perplexity {ppl_cpp:.3f} vs {ppl_ref:.3f}, HF export "
          f"{math.exp(-a.mean()):.3f}")
    assert diff < tol, diff
    assert abs(ppl_cpp / ppl_ref - 1) < (0.01 if kind in AGAINST_HF else 0.05)
    if kind in ("f32", "f16"):  # the same greedy continuation, and the same chat answer
        prompt = tok("The king said", add_special_tokens=True).input_ids
        with torch.no_grad():
            want = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False)[0, len(prompt):]
        llm.reset()
        got = []
        for t in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            got.append(t)
            if len(got) == 16:
                break
        assert got == want.tolist()
        chat = [{"role": "user", "content": "What is the capital of France?"}]
        rendered = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
        with torch.no_grad():
            want = model.generate(torch.tensor([rendered]), max_new_tokens=12, do_sample=False)[0, len(rendered):]
        answer = llm.create_chat_completion(chat, max_tokens=12, temperature=0.0, top_k=1)
        assert answer["choices"][0]["message"]["content"].strip() == tok.decode(want, skip_special_tokens=True).strip()


def test_llama_cpp_runs_our_own_model_and_tokenizer(trained: Path, tmp_path):
    from lightning_llm.cli.export import export
    from tests.integration.test_deployment import export_cfg

    out = export(export_cfg(f"model_path={trained / 'checkpoints' / 'last.ckpt'}", "format=gguf", "gguf.type=f32",
                            f"out={tmp_path / 'ours.gguf'}"))
    assert out == tmp_path / "ours.gguf" and (tmp_path / "ours.Modelfile").is_file()
    model, tok = _hf(trained / "export")
    llm = _cpp(out)
    text = HELD_OUT[:300]
    ids = tok(text).input_ids
    assert llm.tokenize(text.encode(), add_bos=True, special=False) == ids
    a, b = _next_token_lp(_hf_logprobs(model, ids), ids), _next_token_lp(_cpp_logprobs(llm, ids), ids)
    assert float(np.abs(a - b).mean()) < AGAINST_HF["f32"]
