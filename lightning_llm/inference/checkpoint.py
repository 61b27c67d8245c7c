"""The model and tokenizer inside a Lightning checkpoint of `llm-train` (a `.ckpt` file or a DeepSpeed checkpoint
folder), without building the training module.

A checkpoint stores the model's config as hyperparameters (`arch`, `config`, `vocab_size`, `eos_token_id`)
and its weights under `model.` in the state dict; a distillation run's checkpoint holds its student only.
"""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lightning_llm.checkpoint_files import model_weights, read_state
from lightning_llm.data.run_data import tokenizer_dir_of
from lightning_llm.data.tokenizer import load_tokenizer
from lightning_llm.errors import UserError
from lightning_llm.models import model_config, model_from_weights


def model_from_checkpoint(ckpt: str | Path) -> PreTrainedModel:
    """The `transformers` model a checkpoint holds, in eval mode."""
    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise UserError(f"checkpoint {ckpt} does not exist: give a .ckpt file of an llm-train run (checkpoints/)")
    try:
        hp = read_state(ckpt)["hyper_parameters"]
        config = model_config(hp["arch"], dict(hp.get("config") or {}), hp["vocab_size"], hp.get("eos_token_id"))
        model = model_from_weights(config, model_weights(ckpt))
    except UserError:
        raise
    except Exception as e:  # a truncated file, another library's checkpoint, a different model config
        raise UserError(f"could not load {ckpt} as a lightning_llm checkpoint: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    return model.eval()


def load_checkpoint(ckpt: str | Path, tokenizer: str | Path | None = None,
                    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) of a checkpoint; the tokenizer defaults to the one its data was prepared with."""
    model = model_from_checkpoint(ckpt)
    tokenizer = tokenizer or tokenizer_dir_of(ckpt)
    tok = load_tokenizer(tokenizer)
    if len(tok) > model.config.vocab_size:
        raise UserError(f"tokenizer {tokenizer} has {len(tok)} tokens but the model only "
                        f"{model.config.vocab_size}: it is not this model's tokenizer")
    return model, tok
