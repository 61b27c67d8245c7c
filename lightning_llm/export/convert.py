"""One call for every export: a checkpoint or an HF folder in, the asked format out (what `llm-export` runs)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from lightning_llm.errors import UserError
from lightning_llm.export.hf import export_checkpoint
from lightning_llm.inference.loading import missing_export_files
from lightning_llm.models.pretrained import resolve_model

FORMATS = ("hf", "onnx", "gguf")


def convert(source: str | Path, out: str | Path | None = None, fmt: str = "hf", quantize: str | None = None,
            tokenizer: str | Path | None = None, gguf_type: str = "q8_0") -> dict:
    """Export `source` (a `.ckpt` of llm-train, an HF export folder, or what `resolve_model` takes: a .gguf
    file, a built-in name, a hub id) as `fmt`, optionally quantized (`gguf_type` for GGUF).

    Returns what was made: `out`, and `mb` / `fp32_mb` for a quantized export, `max_abs_diff` (the
    onnxruntime check) for ONNX, `modelfile` and `mb` for GGUF.
    """
    source = Path(source)
    if source.suffix != ".ckpt" and not source.is_dir():  # a .gguf file, a built-in name or a hub id
        named, source = source, resolve_model(source, key="model_path")
        out = out or default_out(Path.cwd() / (named.stem if named.suffix == ".gguf" else named.name), fmt, quantize,
                                 gguf_type)
    _check(source, fmt, quantize)
    out = Path(out) if out else default_out(source, fmt, quantize, gguf_type)
    if fmt == "hf" and not quantize:
        return {"out": export_checkpoint(source, out, tokenizer)}
    with tempfile.TemporaryDirectory(prefix="llm-export-") as tmp:
        is_ckpt = source.suffix == ".ckpt"  # a file, or DeepSpeed's folder of that name
        hf_dir = export_checkpoint(source, Path(tmp) / "hf", tokenizer) if is_ckpt else source
        if fmt == "gguf":
            from lightning_llm.export.gguf import export_gguf

            return export_gguf(hf_dir, out, gguf_type)
        if quantize:
            from lightning_llm.export.quantize import quantize_export

            quantize_export(hf_dir, out, quantize)
            return {"out": out, "mb": _mb(out), "fp32_mb": _mb(hf_dir)}
        from lightning_llm.export.onnx import export_onnx

        return {"out": out, **export_onnx(hf_dir, out)}


def _check(source: Path, fmt: str, quantize: str | None) -> None:
    if fmt not in FORMATS:
        raise UserError(f"format={fmt!r}: choose one of {list(FORMATS)}")
    if quantize and fmt != "hf":
        raise UserError("quantize= applies to format=hf (torchao int8 for transformers); export ONNX unquantized, "
                        "and choose a GGUF file's weights with gguf.type=")
    if source.suffix != ".ckpt" and not source.is_dir():
        raise UserError(f"model_path={source}: give a .ckpt of an llm-train run or an exported model folder")
    if source.suffix == ".ckpt":
        return
    if missing := missing_export_files(source):
        raise UserError(f"{source} is not a complete export: missing {', '.join(missing)}")
    if "quantization_config" in json.loads((source / "config.json").read_text()):
        raise UserError(f"{source} is already quantized: export from the full-precision export/ or a .ckpt")
    if fmt == "hf" and not quantize:
        raise UserError(f"{source} is already a Hugging Face folder: add quantize=int8, format=onnx or format=gguf")


def default_out(source: Path, fmt: str, quantize: str | None, gguf_type: str = "q8_0") -> Path:
    """<run dir>/checkpoints/last.ckpt -> <run dir>/export-last[-int8|-onnx|-q8_0.gguf]; a folder ->
    <folder>-<suffix>."""
    suffix = f"-{quantize}" if quantize else ("-onnx" if fmt == "onnx" else "")
    suffix = f"-{gguf_type}.gguf" if fmt == "gguf" else suffix
    if source.suffix == ".ckpt":
        return source.parent.parent / f"export-{source.stem}{suffix}"
    return source.with_name(source.name + suffix)


def _mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file()) / 1e6
