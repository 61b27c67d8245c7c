"""GGUF export: one `.gguf` file that llama.cpp, Ollama and LM Studio run, written with the `gguf` package.

    export_gguf("run/export", "run/export-q8_0.gguf", "q8_0")

From a Hugging Face folder (what `llm-train` exports): every tensor under llama.cpp's name (the `gguf` package's
own name map), the architecture's hyperparameters, the tokenizer (BPE tokens, merges, token types, special ids,
whether to add BOS, the pre-tokenizer llama.cpp should split with) and the chat template, so llama.cpp tokenizes
and chats as transformers does. Beside the file, an Ollama `Modelfile`.

Llama-family models (llama, mistral: llama.cpp's `llama` graph) and Qwen2 are written; other architectures,
vocabularies llama.cpp cannot split the same way and rope scalings it cannot express are refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from lightning_llm.errors import UserError

TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")
# the output matrix (the token embedding, when tied) of a q4_0 file is kept at q8_0, as llama.cpp's own quantizer
# keeps it finer (Q6_K there, which the gguf package cannot write); q8_0 files keep it q8_0, as llama.cpp's do
OUTPUT_TYPE = {"q4_0": "q8_0"}
# transformers model_type -> (llama.cpp architecture, whether Q/K rows are permuted to llama.cpp's rope layout)
ARCHS = {"llama": ("llama", True), "mistral": ("llama", True), "qwen2": ("qwen2", False)}

# llama.cpp tells BPE pre-tokenizers apart by the ids a tokenizer gives this text (convert_hf_to_gguf.py's
# get_vocab_base_pre); the hashes of the bases we name in the docs, from that table
_CHECK_TEXT = (
    '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple '
    'emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333'
    ' 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天'
    '～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!'
    "!!!?????? I've been 'told he's there, 'RE you sure? 'M not s"
    "ure I'll make it, 'D you like some tea? We'Ve a'lL"
)
_KNOWN_PRE = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}


def check_target(model_type: str, type: str, key: str = "gguf.type") -> None:
    """Refuse, before any work, a type the writer cannot write or an architecture it does not know."""
    if type not in TYPES:
        raise UserError(f"{key}={type!r}: choose one of {list(TYPES)}")
    if model_type not in ARCHS:
        raise UserError(f"a {model_type!r} model; the GGUF export writes {sorted(ARCHS)}: export to format=hf or "
                        "format=onnx instead")


def export_gguf(hf_dir: str | Path, out: str | Path, type: str = "q8_0") -> dict:
    """Write `hf_dir` (an HF causal-LM folder) as the GGUF file `out` with weights of `type` (f32, f16, bf16,
    q8_0 or q4_0; norms stay f32, and a matrix whose rows do not fill whole blocks is written f16), plus
    `<out stem>.Modelfile` for Ollama. Returns `out`, `modelfile`, `mb` and the per-type tensor counts."""
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    hf_dir, out = Path(hf_dir), Path(out)
    if type not in TYPES:
        raise UserError(f"gguf.type={type!r}: choose one of {list(TYPES)}")
    config = AutoConfig.from_pretrained(hf_dir)
    try:
        check_target(config.model_type, type)
    except UserError as e:
        raise UserError(f"{hf_dir}: {e}") from None
    arch, permute = ARCHS[config.model_type]
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    pre = pre_tokenizer(tokenizer, hf_dir)
    rope_freqs = _rope(config, hf_dir)

    out.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("gguf.gguf_writer").setLevel(logging.WARNING)  # its INFO lines name our temp file
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # same folder: the rename below is atomic
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        _hyperparameters(writer, config, type)
        _vocabulary(writer, tokenizer, hf_dir, config, pre)
        counts = _tensors(writer, _state_dict(hf_dir), config, arch, permute, type, rope_freqs)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    modelfile = out.with_suffix(".Modelfile")
    from lightning_llm.export.modelfile import write_modelfile

    write_modelfile(modelfile, out, tokenizer, hf_dir)
    return {"out": out, "modelfile": modelfile, "mb": out.stat().st_size / 1e6, "tensor_types": counts}


def pre_tokenizer(tokenizer, where: Path | str) -> str:
    """The name of the pre-tokenizer llama.cpp must use to split text as `tokenizer` does: a known base's (by
    llama.cpp's own check text), else read off the tokenizer's pipeline (GPT-2's byte-level regex, with or
    without SmolLM's single digits); anything else is refused."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise UserError(f"{where}: a {spec['model']['type']} tokenizer; the GGUF export writes byte-level BPE "
                        "tokenizers (GPT-2 style, as ours and SmolLM2/Llama 3/Qwen2 use)")
    digest = hashlib.sha256(str(tokenizer.encode(_CHECK_TEXT, verbose=False)).encode()).hexdigest()
    if digest in _KNOWN_PRE:
        return _KNOWN_PRE[digest]
    pre, norm = spec.get("pre_tokenizer") or {}, spec.get("normalizer")
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    byte_level = steps and steps[-1].get("type") == "ByteLevel" and steps[-1].get("use_regex", True)
    if norm is None and byte_level and kinds == ["ByteLevel"]:
        return "gpt-2"
    if norm is None and byte_level and kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    raise UserError(f"{where}: its tokenizer splits text with {kinds or 'no pre-tokenizer'}"
                    f"{' after a normalizer' if norm else ''}, which no llama.cpp pre-tokenizer reproduces: train "
                    "the tokenizer with lightning_llm (byte-level BPE) or start from a base llama.cpp knows")


def _hyperparameters(writer, config, type: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(getattr(config, "_name_or_path", "") or "lightning_llm export")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(_rope_parameters(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    scaling = _rope_parameters(config)
    if scaling.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))
    file_type = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0",
                 "q4_0": "MOSTLY_Q4_0"}[type]
    writer.add_file_type(getattr(gguf.LlamaFileType, file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope_parameters(config) -> dict:
    # transformers 5 keeps rope_theta and the scaling in `rope_parameters`; 4.x in rope_theta / rope_scaling
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    if getattr(config, "rope_theta", None) is not None:
        params.setdefault("rope_theta", config.rope_theta)
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def _rope(config, where: Path) -> np.ndarray | None:
    """Llama 3's frequency-dependent rope scaling as llama.cpp takes it (a `rope_freqs` tensor of factors);
    None for plain and linear rope; other scalings are refused."""
    p = _rope_parameters(config)
    kind = p["rope_type"]
    if kind in ("default", "linear"):
        return None
    if kind != "llama3":
        raise UserError(f"{where}: rope scaling {kind!r} is not written to GGUF yet (default, linear and llama3 are)")
    heads = config.num_attention_heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    freqs = 1.0 / (float(p.get("rope_theta", 10000.0)) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor, low, high = p.get("factor", 8.0), p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
    old = p.get("original_max_position_embeddings", 8192)
    factors = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def _vocabulary(writer, tokenizer, hf_dir: Path, config, pre: str) -> None:
    import gguf

    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= config.vocab_size:
        raise UserError(f"{hf_dir}: the tokenizer has ids up to {max(vocab.values())}, the model's embedding only "
                        f"{config.vocab_size}: export the model together with the tokenizer it was trained with")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(config.vocab_size):  # an embedding padded past the vocabulary gets unused placeholders
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=config.vocab_size)
    if not special.merges:
        raise UserError(f"{hf_dir}: its tokenizer.json has no BPE merges llama.cpp could read")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
           "unk": tokenizer.unk_token_id}
    for name, i in ids.items():
        if i is not None:
            special.special_token_ids[name] = i
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        special.special_token_ids["pad"] = tokenizer.eos_token_id  # as our HF export's generation config pads
    # what transformers does: add BOS only where the tokenizer's own pipeline adds it
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special.add_special_token["bos"] = len(with_special) > len(plain) and with_special[0] == tokenizer.bos_token_id
    special.add_special_token["eos"] = len(with_special) > len(plain) and with_special[-1] == tokenizer.eos_token_id
    special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)


def _state_dict(hf_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"{hf_dir}: no .safetensors weights to export")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    return state


def _tensors(writer, state: dict[str, torch.Tensor], config, arch: str, permute: bool, type: str,
             rope_freqs: np.ndarray | None) -> dict[str, int]:
    import gguf

    arch_enum = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)
    names = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    tied = getattr(config, "tie_word_embeddings", False)
    counts: dict[str, int] = {}
    if rope_freqs is not None:
        writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", rope_freqs)
        counts["f32"] = 1
    for hf_name, t in state.items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # computed by llama.cpp / the tied embedding serves as the output matrix
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"tensor {hf_name} has no llama.cpp name for a {arch} model: this checkpoint has "
                            "parts the GGUF export does not know")
        t = t.float()
        if permute and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            t = _rope_permute(t, heads if "q_proj" in hf_name else kv_heads)
        data, written = _encode(t.numpy(), OUTPUT_TYPE.get(type, type) if _is_output(name, tied) else type)
        writer.add_tensor(name, data, raw_dtype=None if written in ("f32", "f16") else _qtype(written))
        counts[written] = counts.get(written, 0) + 1
    return counts


def _is_output(name: str, tied: bool) -> bool:
    return name == "output.weight" or (tied and name == "token_embd.weight")


def _rope_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF's Llama q/k rows (rotate-half halves) -> llama.cpp's interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _qtype(name: str):
    import gguf

    return {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
            "q4_0": gguf.GGMLQuantizationType.Q4_0}[name]


def _encode(a: np.ndarray, type: str) -> tuple[np.ndarray, str]:
    """The bytes of one tensor and the type they are in: 1-D tensors (norms, biases) stay f32, as llama.cpp
    needs them; a block type falls back to f16 where a row is not a whole number of blocks."""
    import gguf

    if a.ndim == 1 or type == "f32":
        return a.astype(np.float32), "f32"
    if type == "f16":
        return a.astype(np.float16), "f16"
    block = gguf.GGML_QUANT_SIZES[_qtype(type)][0]
    if a.shape[-1] % block:
        return a.astype(np.float16), "f16"
    return gguf.quants.quantize(a.astype(np.float32), _qtype(type)), type
