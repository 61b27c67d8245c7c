"""Load the model a fine-tuning run starts from, with clear errors for folders that cannot be it."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lightning_llm.errors import UserError


def check_model_dir(path: str | Path | None, key: str = "init_from") -> Path:
    if not path:
        raise UserError(f"fine-tuning starts from a trained model: give {key}=<folder>, e.g. the export/ folder of "
                        "an llm-train run (llm-train hydra.run.dir=RUN, then RUN/export)")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UserError(f"{key}={path}: no config.json there; give a Hugging Face model folder (an export/ of "
                        "llm-train, or any transformers causal-LM folder)")
    return folder


def load_causal_lm(path: str | Path, trust_remote_code: bool = False) -> PreTrainedModel:
    folder = check_model_dir(path)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=trust_remote_code,
                                                     attn_implementation="sdpa")
    except ValueError as e:
        raise UserError(f"init_from={path}: {config.model_type!r} is not a causal LM that transformers can load "
                        f"({str(e).splitlines()[0]}); give a causal-LM folder") from None
    if not getattr(config, "architectures", None) or not any("CausalLM" in a or "LMHead" in a
                                                             for a in config.architectures):
        raise UserError(f"init_from={path}: the folder holds a {config.architectures} model, not a causal LM "
                        "(its head would be thrown away and trained from scratch); give a causal-LM folder")
    return model
