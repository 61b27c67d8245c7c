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


# A base model's own chat template (ChatML for SmolLM2 and Qwen, Llama 3's headers, ...): fine-tuning renders
# examples through it, so the model learns the format `pipeline(messages)` and `llm-generate --chat` prompt it
# with, and learns to end its turns with the template's end-of-turn token (`<|im_end|>` in ChatML).


def has_own_template(tokenizer) -> bool:
    """Whether `tokenizer` brings a chat template of its own (not ours, not none)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and template != CHAT_TEMPLATE


def _render(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def template_segments(messages: list[dict[str, str]], tokenizer) -> list[tuple[str, bool]]:
    """(text, is_response) pieces of `messages` as the tokenizer's own template renders them; a response piece is
    the assistant's content and the end-of-turn token the template writes after it (what generation stops at).

    The pieces joined are exactly `apply_chat_template(messages, tokenize=False)`. Raises ValueError for a
    conversation the template does not render turn by turn (an earlier turn's text changes when one is added).
    """
    out: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] not in ROLES:
            raise ValueError(f"unknown role {m['role']!r}: use one of {list(ROLES)}")
        if m["role"] != "assistant":
            continue
        if i == 0:
            raise ValueError("the conversation starts with an assistant turn: put a user (or system) turn first")
        prompt, full = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[: i + 1], False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise ValueError("the model's chat template renders earlier turns differently once a later turn is added, "
                             "so its answers cannot be cut out for training; give one assistant turn per record")
        response = full[len(prompt):]
        end = _end_of_turn(response, m["content"], tokenizer)
        out += [(prompt[len(done):], False), (response[:end], True)]
        done = prompt + response[:end]
    rest = _render(tokenizer, messages, False)[len(done):]
    out.append((rest, False))
    return [(text, learned) for text, learned in out if text]


def _special_tokens(tokenizer) -> list[str]:
    added = [t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special]
    return sorted(set(tokenizer.all_special_tokens) | set(added), key=len, reverse=True)


def _end_of_turn(response: str, content: str, tokenizer) -> int:
    """Where the assistant's turn ends in `response`: after the special token that follows its content (after
    its content where none does, e.g. a template that only adds a newline)."""
    content = content.strip()
    at = response.find(content) if content else 0
    start = at + len(content) if at >= 0 else 0
    rest = response[start:]
    for token in _special_tokens(tokenizer):
        if rest.lstrip(" ").startswith(token):
            return start + (len(rest) - len(rest.lstrip(" "))) + len(token)
    return len(response) if at < 0 else start


def end_of_turn_id(tokenizer) -> int | None:
    """The token id the chat template ends an assistant turn with (the tokenizer's EOS in our format)."""
    if not has_own_template(tokenizer):
        return tokenizer.eos_token_id
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    response = next(text for text, learned in template_segments(probe, tokenizer) if learned)
    ids = tokenizer(response, add_special_tokens=False).input_ids
    specials = set(tokenizer.all_special_ids) | {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
                                                 if t.special}
    return ids[-1] if ids and ids[-1] in specials else tokenizer.eos_token_id


def chat_prompt_text(messages: list[dict[str, str]], tokenizer) -> str:
    """The text a model continues to answer `messages` (ending with a user turn), in its own template or ours."""
    if has_own_template(tokenizer):
        return _render(tokenizer, messages, True)
    return generation_prompt(messages, tokenizer.eos_token)
