"""`llm-export model_path=CKPT [out=DIR] [quantize=int8] [format=onnx]`: a checkpoint of `llm-train` -> a
Hugging Face folder (config.json, model.safetensors, generation_config.json, tokenizer files) that
`transformers` loads; int8-quantized for CPU inference, or ONNX checked in onnxruntime.

`llm-export CKPT [OUT]` (positional) still works: it means model_path=CKPT out=OUT.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lightning_llm.cli._app import CONF_DIR, quiet_third_party_logs, run_safely
from lightning_llm.errors import UserError

FORMATS = ("hf", "onnx")


def export(cfg: DictConfig) -> Path:
    from lightning_llm.checkpoint_export import export_checkpoint
    from lightning_llm.loading import missing_export_files

    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format!r}: choose one of {list(FORMATS)}")
    if cfg.quantize and cfg.format != "hf":
        raise UserError("quantize= applies to format=hf (torchao int8 for transformers); export ONNX unquantized")
    source = Path(cfg.model_path)
    out = Path(cfg.out) if cfg.out else default_out(source, cfg.format, cfg.quantize)
    if source.suffix != ".ckpt" and not source.is_dir():
        raise UserError(f"model_path={source}: give a .ckpt of an llm-train run or an exported model folder")
    if source.is_dir() and (missing := missing_export_files(source)):
        raise UserError(f"{source} is not a complete export: missing {', '.join(missing)}")
    if source.is_dir() and "quantization_config" in json.loads((source / "config.json").read_text()):
        raise UserError(f"{source} is already quantized: export from the full-precision export/ or a .ckpt")
    if cfg.format == "hf" and not cfg.quantize:
        if source.is_dir():
            raise UserError(f"{source} is already a Hugging Face folder: add quantize=int8 or format=onnx")
        export_checkpoint(source, out, cfg.tokenizer)
        print(f"Exported {source} to {out}")
        return out
    with tempfile.TemporaryDirectory(prefix="llm-export-") as tmp:
        hf_dir = source if source.is_dir() else export_checkpoint(source, Path(tmp) / "hf", cfg.tokenizer)
        if cfg.quantize:
            from lightning_llm.quantize import quantize_export

            quantize_export(hf_dir, out, cfg.quantize)
            print(f"Exported {source} to {out} ({cfg.quantize}, {_mb(out):.1f} MB, fp32: {_mb(hf_dir):.1f} MB)")
        else:
            from lightning_llm.onnx_export import export_onnx

            check = export_onnx(hf_dir, out)
            print(f"Exported {source} to {out}/model.onnx; onnxruntime logits match transformers' to "
                  f"{check['max_abs_diff']:.1e}")
    return out


def default_out(source: Path, fmt: str, quantize: str | None) -> Path:
    suffix = f"-{quantize}" if quantize else ("-onnx" if fmt == "onnx" else "")
    if source.suffix == ".ckpt":  # <run dir>/checkpoints/last.ckpt -> <run dir>/export-last[-int8]
        return source.parent.parent / f"export-{source.stem}{suffix}"
    return source.with_name(source.name + suffix)


def _mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file()) / 1e6


def positional_to_overrides(argv: list[str]) -> list[str]:
    """`CKPT [OUT]` -> `model_path=CKPT [out=OUT]`, for the command line of earlier releases."""
    lead = 0
    while lead < min(2, len(argv)) and "=" not in argv[lead] and not argv[lead].startswith("-"):
        lead += 1
    return [f"{name}={a}" for name, a in zip(("model_path", "out"), argv[:lead], strict=False)] + argv[lead:]


@hydra.main(config_path=CONF_DIR, config_name="export", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    run_safely(export, cfg)


def main() -> None:
    sys.argv[1:] = positional_to_overrides(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
