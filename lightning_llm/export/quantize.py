"""Post-training int8 quantization of an exported model, for CPU inference.

On disk: int8 per-channel weights through torchao and transformers' `TorchAoConfig`. The folder is an
ordinary Hugging Face folder (`config.json` records the quantization, weights stay safetensors) that
`AutoModelForCausalLM.from_pretrained` loads as is wherever torchao is installed, GPUs included. At run
time on CPU, `lightning_llm.inference.load_model` puts the same weights on fast int8 kernels
(`lightning_llm.inference.int8`).
"""

from __future__ import annotations

from pathlib import Path

from lightning_llm.errors import UserError
from lightning_llm.inference.loading import load_model
from lightning_llm.io import atomic_dir

SCHEMES = ("int8",)


def quantization_config(scheme: str):
    """The `TorchAoConfig` of a scheme name."""
    if scheme not in SCHEMES:
        raise UserError(f"quantize={scheme!r}: choose one of {list(SCHEMES)}")
    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError as e:
        raise UserError("quantization needs torchao: pip install 'lightning_llm[quantize]'") from e
    from transformers import TorchAoConfig

    return TorchAoConfig(quant_type=Int8WeightOnlyConfig())


def quantize_export(src: str | Path, out_dir: str | Path, scheme: str = "int8") -> Path:
    """Quantize an exported folder `src` into `out_dir` (model + tokenizer + generation config)."""
    model, tokenizer = load_model(src, cpu_int8=False, quantization_config=quantization_config(scheme))
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
