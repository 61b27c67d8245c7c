"""`llm-generate`: continue a prompt with an exported model, streaming tokens to the terminal."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer

from lightning_llm.cli._app import CONF_DIR, quiet_third_party_logs, run_safely
from lightning_llm.errors import UserError
from lightning_llm.generation import generate


def run(cfg: DictConfig) -> list[str]:
    folder = Path(cfg.model)
    missing = [f for f in ("config.json", "tokenizer_config.json") if not (folder / f).exists()]
    if missing:
        raise UserError(f"model={folder} is not an exported model folder (missing {', '.join(missing)}): "
                        "point it at the export/ folder of an llm-train run")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    streamer = TextStreamer(tokenizer, skip_special_tokens=True) if cfg.stream else None
    outs = generate(model, tokenizer, [str(cfg.prompt)], cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p,
                    cfg.seed, streamer=streamer)
    if not cfg.stream:
        print(outs[0])
    return outs


@hydra.main(config_path=CONF_DIR, config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    run_safely(run, cfg)


if __name__ == "__main__":
    main()
