"""Post-training int8 quantization for CPU inference, through torchao and transformers' `TorchAoConfig`.

The result is an ordinary Hugging Face folder: `config.json` records the quantization, the weights stay
safetensors, and `AutoModelForCausalLM.from_pretrained` loads it as is where torchao is installed.
"""

from __future__ import annotations

from pathlib import Path

from lightning_llm.errors import UserError

# int8: int8 weights, activations stay float (decoding on CPU reads weights, so that is what shrinks);
# int8-dynamic: int8 weights and per-token int8 activations (int8 matmuls; pays off for long prompts).
SCHEMES = ("int8", "int8-dynamic")


def quantization_config(scheme: str):
    """The `TorchAoConfig` of a scheme name."""
    if scheme not in SCHEMES:
        raise UserError(f"quantize={scheme!r}: choose one of {list(SCHEMES)}")
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    except ImportError as e:
        raise UserError("quantization needs torchao: pip install 'lightning_llm[quantize]'") from e
    from transformers import TorchAoConfig

    kind = Int8WeightOnlyConfig() if scheme == "int8" else Int8DynamicActivationInt8WeightConfig()
    return TorchAoConfig(quant_type=kind)


def quantize_export(src: str | Path, out_dir: str | Path, scheme: str = "int8") -> Path:
    """Quantize an exported folder `src` into `out_dir` (model + tokenizer + generation config)."""
    from transformers import AutoTokenizer

    from lightning_llm.io import atomic_dir
    from lightning_llm.loading import load_model

    model, _ = load_model(src, quantization_config=quantization_config(scheme), device_map="cpu")
    tokenizer = AutoTokenizer.from_pretrained(src)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
