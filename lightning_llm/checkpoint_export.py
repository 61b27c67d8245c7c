"""From a Lightning checkpoint to a Hugging Face folder: the model it holds and the tokenizer it trained with."""

from __future__ import annotations

from pathlib import Path

import torch

from lightning_llm.data.tokenizer import load_tokenizer
from lightning_llm.errors import UserError
from lightning_llm.export import export_hf
from lightning_llm.module import CausalLMModule, student_hparams


def load_checkpoint(ckpt: str | Path, tokenizer: str | Path | None = None):
    """(model, tokenizer) of a checkpoint; the tokenizer defaults to the one its data was prepared with."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise UserError(f"checkpoint {ckpt} does not exist: give a .ckpt file of an llm-train run (checkpoints/)")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        module = CausalLMModule(**student_hparams(state["hyper_parameters"]))
        module.load_state_dict(state["state_dict"])
    except Exception as e:  # a truncated file, another library's checkpoint, a different model config
        raise UserError(f"could not load {ckpt} as a lightning_llm checkpoint: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    tokenizer = tokenizer or tokenizer_dir_of(ckpt)
    tok = load_tokenizer(tokenizer)
    if len(tok) > module.model.config.vocab_size:
        raise UserError(f"tokenizer {tokenizer} has {len(tok)} tokens but the model only "
                        f"{module.model.config.vocab_size}: it is not this model's tokenizer")
    return module.model.eval(), tok


def prepared_dir_of(ckpt: Path) -> str | None:
    """The prepared-data folder a checkpoint's run trained on, as its DataModule recorded it."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    return next((v.get("prepared_dir") for k, v in state.items()
                 if k.endswith("DataModule") and isinstance(v, dict)), None)


def tokenizer_dir_of(ckpt: Path) -> Path:
    """The tokenizer folder of the data a checkpoint's run was prepared with."""
    prepared = prepared_dir_of(ckpt)
    if not prepared or not (Path(prepared) / "tokenizer").is_dir():
        raise UserError(f"{ckpt} does not say where its tokenizer is (or {prepared}/tokenizer is gone): "
                        "pass the tokenizer folder (e.g. the export/ folder of the same run)")
    return Path(prepared) / "tokenizer"


def export_checkpoint(ckpt: str | Path, out_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    model, tok = load_checkpoint(ckpt, tokenizer)
    return export_hf(model, tok, out_dir, max_length=model.config.max_position_embeddings)
