"""Load a model for inference from what `llm-train` leaves behind: an export folder or a `.ckpt`."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lightning_llm.errors import UserError
from lightning_llm.inference.checkpoint import load_checkpoint
from lightning_llm.inference.int8 import cpu_int8_kernels, is_int8
from lightning_llm.models.pretrained import BUILTIN_MODELS, is_hub_id, resolve_model

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def missing_export_files(folder: str | Path) -> list[str]:
    """What a Hugging Face causal-LM folder lacks to be loaded with its tokenizer (empty when complete)."""
    folder = Path(folder)
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / f).is_file() for f in WEIGHTS):
        missing.append(f"weights ({' or '.join(WEIGHTS[:2])})")
    if not any((folder / f).is_file() for f in TOKENIZER):
        missing.append(f"tokenizer files ({' or '.join(TOKENIZER[:2])})")
    return missing


def load_model(path: str | Path, tokenizer: str | Path | None = None, cpu_int8: bool = True,
               **from_pretrained) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model in eval mode, tokenizer) of an export folder or a Lightning checkpoint of `llm-train`.

    An int8 export (`llm-export quantize=int8`) on CPU runs on PyTorch's int8 CPU kernels (`cpu_int8`; see
    `lightning_llm.inference.int8`).

    Local folders are checked first, so a half-copied export is named with what it lacks instead of failing
    deep inside `from_pretrained`. A `.gguf` file, a built-in name (smollm2-135m-instruct) or a hub id resolve to
    a local folder first (`lightning_llm.models.pretrained.resolve_model`; remote code stays off).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if path.suffix == ".ckpt":
        return load_checkpoint(path, tokenizer)
    if path.suffix == ".gguf" or str(path) in BUILTIN_MODELS or is_hub_id(str(path)):
        path = resolve_model(path, key="model_path")
    if path.is_dir():
        if (path / "model.onnx").is_file():
            raise UserError(f"{path} is an ONNX export: run it with onnxruntime (llm-generate does, through "
                            "lightning_llm.inference.onnx_generation), or give the Hugging Face export folder")
        missing = [m for m in missing_export_files(path) if tokenizer is None or not m.startswith("tokenizer")]
        if missing:
            raise UserError(f"{path} is not a complete model folder: missing {', '.join(missing)}. Point it at the "
                            "export/ folder of an llm-train run, re-run llm-export, or pass a .ckpt")
    elif path.exists() or path.is_absolute() or str(path).startswith("."):
        raise UserError(f"{path} is neither a .ckpt file nor a model folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **from_pretrained)
        tok = AutoTokenizer.from_pretrained(tokenizer or path)
    except (OSError, ValueError) as e:
        raise UserError(f"could not load {path}: {str(e).splitlines()[0]}") from e
    if cpu_int8 and model.device.type == "cpu" and is_int8(model):
        cpu_int8_kernels(model)
    return model.eval(), tok
