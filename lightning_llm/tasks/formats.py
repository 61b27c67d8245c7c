"""Turn records of the formats users bring into conversations (a prompt and the response to learn).

Every format becomes the same `Example`: chat messages whose last turn is the assistant's answer, the
reference answers to score generations against, and the source text (for a copy/lead baseline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lightning_llm.errors import UserError
from lightning_llm.tasks.config import FORMATS
from lightning_llm.tasks.records import Record

# The user turn of each format; `{field}`s come from the record (after `column_map`). Override: data.template.
TEMPLATES = {
    "prompt_response": "{prompt}",
    "alpaca": "{instruction}",
    "squad": "{context}\nQuestion: {question}",
    "translation": "Translate to {target_lang}: {source}",
    "pair": "{source}",
    "lines": "Translate to {target_lang}: {source}",
}
# The fields each format needs in a record (our names; `column_map` maps them to the data's columns).
FIELDS = {
    "prompt_response": ("prompt", "response"),
    "messages": ("messages",),
    "alpaca": ("instruction", "output"),
    "squad": ("context", "question", "answers"),
    "translation": ("translation",),
    "pair": ("source", "target"),
    "lines": ("source", "target"),
}


@dataclass
class Example:
    messages: list[dict[str, str]]  # ends with the assistant turn to learn
    references: list[str] = field(default_factory=list)  # acceptable answers (generation metrics)
    source: str = ""  # the input text, for the copy and lead baselines

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        return self.messages[:-1]

    @property
    def response(self) -> str:
        return self.messages[-1]["content"]


def to_examples(records: Iterable[Record], fmt: str, column_map: dict[str, str] | None = None,
                template: str | None = None, system: str | None = None, source_lang: str = "en",
                target_lang: str = "es") -> list[Example]:
    if fmt not in FORMATS:
        raise UserError(f"data.format={fmt!r}: choose one of {list(FORMATS)}")
    template = template or TEMPLATES.get(fmt)
    out = []
    for record, where in records:
        row = _mapped(record, column_map or {})
        missing = [f for f in FIELDS[fmt] if row.get(f) in (None, "")]
        if missing:
            raise UserError(f"{where}: data.format={fmt} needs the field(s) {missing}; the record has "
                            f"{sorted(record)}: rename them with data.column_map (e.g. "
                            f"data.column_map.{missing[0]}=<your column>) or pick another data.format")
        out.append(_example(row, fmt, template, system, source_lang, target_lang, where))
    return out


def _mapped(record: dict[str, Any], column_map: dict[str, str]) -> dict[str, Any]:
    row = dict(record)
    for ours, theirs in column_map.items():
        if theirs in record:
            row[ours] = record[theirs]
    return row


def _example(row: dict, fmt: str, template: str | None, system: str | None, src: str, tgt: str,
             where: str) -> Example:
    pre = [{"role": "system", "content": system}] if system else []
    if fmt == "messages":
        return _chat(row["messages"], pre, where)
    if fmt == "squad":
        answers = row["answers"]
        texts = answers.get("text", []) if isinstance(answers, dict) else answers
        texts = [texts] if isinstance(texts, str) else [t for t in texts if t]
        if not texts:
            raise UserError(f"{where}: 'answers' holds no answer text: give {{\"text\": [\"...\"]}} or a list")
        fields, response, refs, source = row, texts[0], texts, row["context"]
    elif fmt == "translation":
        pair = row["translation"]
        if not isinstance(pair, dict) or src not in pair or tgt not in pair:
            raise UserError(f"{where}: 'translation' must hold both languages {src!r} and {tgt!r} (set "
                            "data.source_lang / data.target_lang to its keys)")
        fields, response, source = {**row, "source": pair[src]}, pair[tgt], pair[src]
        refs = [response]
    elif fmt == "alpaca":
        extra = row.get("input") or ""
        fields = {**row, "instruction": row["instruction"] + (f"\n\n{extra}" if extra else "")}
        response, refs, source = row["output"], [row["output"]], extra or row["instruction"]
    elif fmt == "prompt_response":
        fields, response, refs, source = row, row["response"], [row["response"]], row["prompt"]
    else:  # pair, lines
        fields, response, refs, source = row, row["target"], [row["target"]], row["source"]
    user = _fill(template, {**fields, "source_lang": src, "target_lang": tgt}, where)
    messages = [*pre, {"role": "user", "content": user}, {"role": "assistant", "content": str(response)}]
    return Example(messages, [str(r) for r in refs], str(source))


def _fill(template: str, fields: dict[str, Any], where: str) -> str:
    try:
        return template.format_map(fields)
    except KeyError as e:
        raise UserError(f"{where}: data.template uses {{{e.args[0]}}}, which the record does not have (it has "
                        f"{sorted(fields)})") from None


def _chat(messages: Any, pre: list[dict[str, str]], where: str) -> Example:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or \
                not isinstance(m.get("content"), str):
            raise UserError(f"{where}: messages[{i}] must be {{\"role\": system|user|assistant, \"content\": str}}")
        turns.append({"role": m["role"], "content": m["content"]})
    if turns[-1]["role"] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's (the response to learn)")
    users = [t["content"] for t in turns if t["role"] == "user"]
    return Example(pre + turns, [turns[-1]["content"]], users[-1] if users else "")
