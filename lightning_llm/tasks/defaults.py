"""What `auto` means in the fine-tuning recipes: learning rate, warmup, LoRA, batch and steps by the base's size.

A learning rate that suits a 4M-parameter model trained here from scratch (1e-3, full fine-tuning) wrecks a
real pretrained base in a dozen steps (SmolLM2-135M: 5.2 -> 12.1 bits per token on Hamlet). So each recipe
carries two tables, `finetune.auto.small` and `finetune.auto.large`, and every key the recipe sets to `auto`
(`optim.lr`, `optim.warmup_steps`, `lora.r`, `lora.alpha`, `trainer.max_steps`, `data.batch_size`) takes its
value from the table of the base's size:

- **small** (under `finetune.auto.large_from` parameters, 50M by default; the models `llm-train` pretrains
  on a CPU): full fine-tuning at the learning rate measured on our 4.4M model;
- **large** (a real pretrained base: SmolLM2, Qwen, Llama): LoRA r=16 on every linear layer at 2e-4 (the
  default of TRL, Unsloth and torchtune for LoRA), or 2e-5 when `lora.r=0` asks for full fine-tuning, and
  steps measured to fit about 15 minutes on 2 CPU cores.

A key given on the command line (`optim.lr=5e-5`) is not `auto` and wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lightning_llm.errors import UserError

log = logging.getLogger("lightning_llm")
AUTO = "auto"


@dataclass
class SizeDefaults:
    """One row of `finetune.auto`: what the `auto` keys become for a base of that size."""

    lora_r: int = 0
    lora_alpha: int = 16
    lr: float = 1e-3  # with full fine-tuning (lora.r=0)
    lora_lr: float = 2e-4  # with LoRA (lora.r>0)
    warmup_steps: int = 20
    max_steps: int = 500
    batch_size: int = 8


# (config key, SizeDefaults field); optim.lr is special: lr or lora_lr by the resolved lora.r
_KEYS = [("lora.r", "lora_r"), ("lora.alpha", "lora_alpha"), ("optim.warmup_steps", "warmup_steps"),
         ("trainer.max_steps", "max_steps"), ("data.batch_size", "batch_size")]


def count_parameters(folder: str | Path, trust_remote_code: bool = False) -> int:
    """Parameters of the causal LM in `folder`, counted on the meta device (nothing is loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter, counted once


def size_of(n_params: int, large_from: float) -> str:
    return "large" if n_params >= large_from else "small"


def resolve_auto(cfg: DictConfig, n_params: int) -> dict[str, object]:
    """Replace every `auto` value of the keys above in `cfg` (in place) from `finetune.auto.<size>`; returns
    what was set. A recipe without `finetune.auto` but with an `auto` key is an error naming it."""
    table = OmegaConf.select(cfg, "finetune.auto")
    wanted = [k for k, _ in [*_KEYS, ("optim.lr", "")] if OmegaConf.select(cfg, k) == AUTO]
    if not wanted:
        return {}
    if table is None:
        raise UserError(f"{', '.join(wanted)}=auto needs a finetune.auto table (the fine-tuning recipes have "
                        "one): give numbers instead")
    large_from = float(table.get("large_from", 50e6))
    size = size_of(n_params, large_from)
    known = {f.name for f in fields(SizeDefaults)}
    row = OmegaConf.to_container(table[size], resolve=True)
    unknown = sorted(set(row) - known)
    if unknown:
        raise UserError(f"finetune.auto.{size}: unknown key(s) {unknown}; known: {sorted(known)}")
    defaults = SizeDefaults(**row)
    chosen: dict[str, object] = {}
    for key, name in _KEYS:
        if OmegaConf.select(cfg, key) == AUTO:
            chosen[key] = getattr(defaults, name)
    lora_r = chosen.get("lora.r", OmegaConf.select(cfg, "lora.r"))
    if OmegaConf.select(cfg, "optim.lr") == AUTO:
        chosen["optim.lr"] = defaults.lora_lr if int(lora_r or 0) > 0 else defaults.lr
    for key, value in chosen.items():
        OmegaConf.update(cfg, key, value, merge=False)
    log.info("init_from has %.1fM parameters (%s: %s finetune.auto.large_from=%.0fM): %s (finetune.auto.%s; a "
             "key given on the command line wins)", n_params / 1e6, size, "under" if size == "small" else "at least",
             large_from / 1e6, " ".join(f"{k}={v}" for k, v in chosen.items()), size)
    return chosen
