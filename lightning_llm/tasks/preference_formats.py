"""Preference records -> `Pair`s: a prompt (chat messages) and two completions (assistant turns), chosen and rejected.

Two layouts, as the public preference sets use them:
- explicit prompt: {"prompt", "chosen", "rejected"}, each a string or a list of chat messages;
- implicit prompt: {"chosen", "rejected"}, each a whole conversation sharing its beginning with the other; the prompt
  is their longest common run of turns. A plain-text transcript whose turns begin with "Human:" and "Assistant:"
  (Anthropic's HH-RLHF layout) is read as messages.
Bad records are refused in one line naming the file and line, and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightning_llm.errors import UserError
from lightning_llm.tasks.records import Record

Messages = list[dict[str, str]]
_TURN = re.compile(r"(?:^|\n\n?)(Human|Assistant):[ \t]?", re.S)
_ROLE = {"Human": "user", "Assistant": "assistant"}


@dataclass
class Pair:
    prompt: Messages  # ends with a user (or system) turn
    chosen: Messages  # the completion: one or more turns, the first an assistant turn
    rejected: Messages
    where: str = ""  # file:line, for messages


def to_pairs(records: Iterable[Record], system: str | None = None) -> list[Pair]:
    """Every record as a `Pair` (explicit or implicit prompt, detected per record)."""
    out = []
    for record, where in records:
        pair = _pair(record, where)
        if system and not any(m["role"] == "system" for m in pair.prompt):
            pair.prompt = [{"role": "system", "content": system}, *pair.prompt]
        out.append(pair)
    return out


def _pair(record: dict[str, Any], where: str) -> Pair:
    for key in ("chosen", "rejected"):
        if key not in record:
            raise UserError(f"{where}: no {key!r} field: a preference record is "
                            "{\"prompt\", \"chosen\", \"rejected\"} or {\"chosen\", \"rejected\"} (whole "
                            "conversations sharing their beginning)")
    if "prompt" in record:
        prompt = _messages(record["prompt"], "user", where, "prompt")
        chosen = _messages(record["chosen"], "assistant", where, "chosen")
        rejected = _messages(record["rejected"], "assistant", where, "rejected")
    else:
        chosen = _messages(record["chosen"], None, where, "chosen")
        rejected = _messages(record["rejected"], None, where, "rejected")
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
            shared += 1
        # the completions start at the first assistant turn after the shared run of turns
        while shared > 0 and chosen[shared - 1]["role"] == "assistant" and (shared == len(chosen)
                                                                            or chosen[shared]["role"] != "assistant"):
            shared -= 1
        if shared == 0:
            raise UserError(f"{where}: \"chosen\" and \"rejected\" share no beginning, so there is no prompt: give "
                            "an explicit \"prompt\" field, or whole conversations that start with the same turns")
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    for name, completion in (("chosen", chosen), ("rejected", rejected)):
        if not completion or completion[0]["role"] != "assistant":
            raise UserError(f"{where}: the {name} completion has no assistant turn: each completion must be (or "
                            "start with) the assistant's answer to the prompt")
        if not any(m["content"].strip() for m in completion if m["role"] == "assistant"):
            raise UserError(f"{where}: the {name} completion is empty: drop the record or give its text")
    if not prompt or prompt[-1]["role"] == "assistant":
        raise UserError(f"{where}: the prompt must end with a user turn (the completions answer it)")
    if chosen == rejected:
        raise UserError(f"{where}: \"chosen\" is identical to \"rejected\": a pair teaches nothing without a "
                        "difference; drop the record")
    return Pair(prompt, chosen, rejected, where)


def _messages(value: Any, role: str | None, where: str, key: str) -> Messages:
    """A string (one turn of `role`, or a Human:/Assistant: transcript) or a list of chat messages."""
    if isinstance(value, str):
        if _TURN.search(value) and (role is None or value.lstrip().startswith(("Human:", "Assistant:"))):
            return _transcript(value, where, key)
        if role is None:
            raise UserError(f"{where}: {key!r} is a plain string without \"Human:\"/\"Assistant:\" turns, and there "
                            "is no \"prompt\" field: give one, or whole conversations as message lists")
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in value):
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
        unknown = {m["role"] for m in messages} - {"system", "user", "assistant"}
        if unknown:
            raise UserError(f"{where}: {key!r} has role(s) {sorted(unknown)}: use system, user and assistant")
        return messages
    raise UserError(f"{where}: {key!r} must be a string or a list of {{\"role\", \"content\"}} messages, got "
                    f"{type(value).__name__}")


def _transcript(text: str, where: str, key: str) -> Messages:
    """"\n\nHuman: ... \n\nAssistant: ..." -> messages (text before the first marker is refused)."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise UserError(f"{where}: {key!r} has text before its first \"Human:\"/\"Assistant:\" turn")
    return [{"role": _ROLE[who], "content": content.strip()} for who, content in zip(parts[1::2], parts[2::2],
                                                                                      strict=True)]
