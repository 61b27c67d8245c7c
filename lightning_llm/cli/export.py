"""`llm-export CKPT [OUT]`: a Lightning checkpoint of `llm-train` -> a Hugging Face folder
(config.json, model.safetensors, generation_config.json, tokenizer files) that `transformers` loads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_llm.errors import UserError


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="llm-export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt)")
    p.add_argument("out", type=Path, nargs="?", help="output folder (default: <run dir>/export-<checkpoint name>)")
    p.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: the one the run prepared)")
    args = p.parse_args(argv)
    out = args.out or args.checkpoint.parent.parent / f"export-{args.checkpoint.stem}"
    try:
        from lightning_llm.checkpoint_export import export_checkpoint

        print(f"Exported {args.checkpoint} to {export_checkpoint(args.checkpoint, out, args.tokenizer)}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
