"""The GGUF export read back by the gguf package's reader and by transformers' GGUF loader (llama.cpp itself runs
it in tests/integration/test_gguf_llama_cpp.py, slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lightning_llm.errors import UserError
from lightning_llm.export.gguf import export_gguf

PASSAGE = "Good night, sweet lady. The king and the queen speak of love and death before the day, 1599."


@pytest.fixture(scope="module")
def written(tiny_export: Path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf")
    return {t: export_gguf(tiny_export, folder / f"tiny-{t}.gguf", t)["out"] for t in ("f32", "q8_0")}


def _field(reader, key: str):
    f = reader.fields[key]
    if f.types[0].name == "STRING":
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0].name == "ARRAY":
        return [f.parts[i] for i in f.data]
    return f.parts[f.data[0]][0]


def test_the_file_holds_the_hyperparameters_tokenizer_and_chat_template(tiny_export, written):
    from gguf import GGUFReader

    config = json.loads((tiny_export / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(tiny_export)
    r = GGUFReader(written["f32"])
    assert _field(r, "general.architecture") == "llama"
    assert _field(r, "llama.block_count") == config["num_hidden_layers"]
    assert _field(r, "llama.context_length") == config["max_position_embeddings"]
    assert _field(r, "llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert _field(r, "llama.embedding_length") == config["hidden_size"]
    assert _field(r, "tokenizer.ggml.model") == "gpt2" and _field(r, "tokenizer.ggml.pre") == "gpt-2"
    assert len(_field(r, "tokenizer.ggml.tokens")) == config["vocab_size"]
    assert len(_field(r, "tokenizer.ggml.merges")) == len(json.loads(tok.backend_tokenizer.to_str())["model"]["merges"])
    assert _field(r, "tokenizer.ggml.eos_token_id") == tok.eos_token_id
    assert not _field(r, "tokenizer.ggml.add_bos_token")  # our tokenizer adds none, so llama.cpp must not
    assert _field(r, "tokenizer.chat_template") == tok.chat_template
    names = {t.name for t in r.tensors}
    assert {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"} <= names
    assert ("output.weight" in names) == (not config.get("tie_word_embeddings", False))


def test_transformers_loads_the_file_with_the_same_tokens_and_logits(tiny_export, written):
    hf = AutoModelForCausalLM.from_pretrained(tiny_export, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_export)
    ids = tok(PASSAGE, return_tensors="pt").input_ids
    for kind, tol in (("f32", 1e-4), ("q8_0", 0.05)):
        path = written[kind]
        g = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
        gtok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        assert gtok(PASSAGE).input_ids == ids[0].tolist()
        with torch.no_grad():
            a, b = hf(ids).logits, g(ids).logits
        scale = a.abs().max()
        assert (a - b).abs().max() / scale < tol, kind


def test_quantized_tensors_dequantize_to_the_weights(tiny_export, written):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    state = load_file(tiny_export / "model.safetensors")
    r = GGUFReader(written["q8_0"])
    t = {x.name: x for x in r.tensors}["blk.0.ffn_up.weight"]
    assert t.tensor_type.name == "Q8_0"
    w = dequantize(t.data, t.tensor_type).reshape(state["model.layers.0.mlp.up_proj.weight"].shape)
    ref = state["model.layers.0.mlp.up_proj.weight"].numpy()
    assert np.abs(w - ref).max() <= np.abs(ref).max() / 127 + 1e-6  # one q8_0 step at most
    assert {x.name: x for x in r.tensors}["output_norm.weight"].tensor_type.name == "F32"
    assert written["q8_0"].stat().st_size < 0.4 * written["f32"].stat().st_size


def test_the_modelfile_names_the_file_template_and_stops(tiny_export, written):
    text = written["q8_0"].with_suffix(".Modelfile").read_text()
    tok = AutoTokenizer.from_pretrained(tiny_export)
    assert f"FROM ./{written['q8_0'].name}" in text
    assert 'TEMPLATE """' in text and "User: {{ .Content }}" in text and "Assistant:" in text
    assert f'PARAMETER stop "{tok.eos_token}"' in text and "untested" in text


def test_what_the_writer_cannot_take_is_refused_in_one_line(tiny_export, tmp_path):
    with pytest.raises(UserError, match=r"gguf\.type=.q5_k."):
        export_gguf(tiny_export, tmp_path / "x.gguf", "q5_k")
    other = tmp_path / "gpt2"
    shutil.copytree(tiny_export, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UserError, match="'gpt2' model; the GGUF export writes"):
        export_gguf(other, tmp_path / "x.gguf", "f16")
    words = tmp_path / "words"
    shutil.copytree(tiny_export, words)
    spec = json.loads((words / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    (words / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"no llama\.cpp pre-tokenizer reproduces"):
        export_gguf(words, tmp_path / "x.gguf", "f16")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*.tmp"))  # nothing half-written
