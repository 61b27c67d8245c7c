"""`llm-generate MODEL PROMPT...`: continue prompts with an exported model, streaming to the terminal.

A plain argparse CLI rather than a Hydra app: prompts are free text, and Hydra's override grammar would
make users quote every comma.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_llm.errors import UserError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="llm-generate", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an export/ folder of llm-train (or any HF causal-LM folder), a .ckpt, "
                   "or an ONNX export (run in onnxruntime)")
    p.add_argument("prompts", nargs="+", help="text to continue; '-' reads one prompt from stdin")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--chat", action="store_true", help="send each prompt as a user message through the model's "
                   "chat template (fine-tuned models of recipe=sft/qa/translate/summarize)")
    p.add_argument("--no-stream", dest="stream", action="store_false", help="print each text when complete")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> list[str]:
    from transformers import TextStreamer

    from lightning_llm.inference.generation import generate
    from lightning_llm.inference.loading import load_model

    prompts = [sys.stdin.read() if p == "-" else p for p in args.prompts]
    if (args.model / "model.onnx").is_file():
        if args.chat:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.model)
            prompts = [chat_prompt(tokenizer, p) for p in prompts]
        return [_onnx(args, prompt) for prompt in prompts]
    model, tokenizer = load_model(args.model)
    if args.chat:
        prompts = [chat_prompt(tokenizer, p) for p in prompts]
    streamer = TextStreamer(tokenizer, skip_special_tokens=True) if args.stream else None
    outs = []
    for prompt in prompts:
        outs += generate(model, tokenizer, [prompt], args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                         args.seed, streamer=streamer)
        if not args.stream:
            print(outs[-1])
    return outs


def chat_prompt(tokenizer, text: str) -> str:
    """`text` as the user's message, rendered by the model's chat template up to the answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("this model has no chat template (tokenizer_config.json): drop --chat, or export it again "
                        "with this version")
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def _onnx(args: argparse.Namespace, prompt: str) -> str:
    """An ONNX export runs in onnxruntime; the continuation streams as it grows."""
    from lightning_llm.inference.onnx_generation import onnx_generate

    shown = ""

    def show(text: str) -> None:
        nonlocal shown
        if text.startswith(shown) and not text.endswith("\ufffd"):  # wait out half a UTF-8 character
            print(text[len(shown):], end="", flush=True)
            shown = text

    if args.stream:
        print(prompt, end="", flush=True)
    out = onnx_generate(args.model, prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed,
                        on_text=show if args.stream else None)
    print("" if args.stream else out)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
