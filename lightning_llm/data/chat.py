"""The chat format of fine-tuned models: one Python rendering and the Jinja template shipped in exports.

Our byte-level BPE has a single special token (EOS, also used as BOS and padding), so turns are marked
with plain text, and every assistant turn ends in EOS, which is what makes a fine-tuned model stop:

    System: <system>\\n
    User: <question>\\n
    Assistant: <answer><EOS>

`segments()` gives the same text as `tokenizer.apply_chat_template(...)` with `CHAT_TEMPLATE`, cut where
the trained (assistant) text starts and ends, so training sees exactly what `transformers` renders at
inference (a test checks the two agree).
"""

from __future__ import annotations

ROLES = ("system", "user", "assistant")
ASSISTANT_HEADER = "Assistant:"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ 'System: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)


def segments(messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """(text, is_response) pieces of a conversation; a response piece is followed by EOS (not included).

    Consecutive prompt text is merged into one piece, so it tokenizes as one string, as at inference.
    """
    out: list[tuple[str, bool]] = []
    prompt = ""
    for m in messages:
        role, content = m["role"], m["content"]
        if role == "system":
            prompt += f"System: {content}\n"
        elif role == "user":
            prompt += f"User: {content}\n"
        elif role == "assistant":
            out.append((prompt + ASSISTANT_HEADER, False))
            out.append((f" {content}", True))
            prompt = ""
        else:
            raise ValueError(f"unknown role {role!r}: use one of {list(ROLES)}")
    if prompt:
        out.append((prompt, False))
    return out


def generation_prompt(messages: list[dict[str, str]], eos_token: str = "") -> str:
    """The text a model continues to answer the conversation `messages` (ending with a user turn); earlier
    answers end in `eos_token` (the tokenizer's EOS text), as in training."""
    return "".join(text + (eos_token if is_response else "") for text, is_response in segments(messages)) \
        + ASSISTANT_HEADER


def with_chat_template(tokenizer):
    """Give a tokenizer without a chat template ours (exports save it in tokenizer_config.json)."""
    if getattr(tokenizer, "chat_template", None) is None:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
