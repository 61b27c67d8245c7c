"""`llm-export model_path=CKPT [out=DIR] [quantize=int8] [format=onnx|gguf] [gguf.type=q8_0]`: a checkpoint of
`llm-train` -> a Hugging Face folder (config.json, model.safetensors, generation_config.json, tokenizer files)
that `transformers` loads; int8-quantized for CPU inference, ONNX checked in onnxruntime, or one GGUF file
(plus an Ollama Modelfile) for llama.cpp, Ollama and LM Studio.

`llm-export CKPT [OUT]` (positional) still works: it means model_path=CKPT out=OUT.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lightning_llm.cli._app import hydra_main


def export(cfg: DictConfig) -> Path:
    from lightning_llm.export.convert import convert

    made = convert(cfg.model_path, cfg.out, cfg.format, cfg.quantize, cfg.tokenizer, cfg.gguf.type)
    out = made["out"]
    if cfg.quantize:
        print(f"Exported {cfg.model_path} to {out} ({cfg.quantize}, {made['mb']:.1f} MB, "
              f"fp32: {made['fp32_mb']:.1f} MB)")
    elif cfg.format == "onnx":
        print(f"Exported {cfg.model_path} to {out}/model.onnx; onnxruntime logits match transformers' to "
              f"{made['max_abs_diff']:.1e} (largest logit {made['max_abs_logit']:.1f})")
    elif cfg.format == "gguf":
        kinds = ", ".join(f"{n} {k}" for k, n in made["tensor_types"].items())
        print(f"Exported {cfg.model_path} to {out} ({made['mb']:.1f} MB; tensors: {kinds}) and "
              f"{made['modelfile'].name} for Ollama (ollama create NAME -f {made['modelfile']})")
    else:
        print(f"Exported {cfg.model_path} to {out}")
    return out


def positional_to_overrides(argv: list[str]) -> list[str]:
    """`CKPT [OUT]` -> `model_path=CKPT [out=OUT]`, for the command line of earlier releases."""
    lead = 0
    while lead < min(2, len(argv)) and "=" not in argv[lead] and not argv[lead].startswith("-"):
        lead += 1
    return [f"{name}={a}" for name, a in zip(("model_path", "out"), argv[:lead], strict=False)] + argv[lead:]


main = hydra_main("export", export, argv_hook=positional_to_overrides)


if __name__ == "__main__":
    main()
