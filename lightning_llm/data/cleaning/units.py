"""Cut a long document into units of the size document-level quality rules were designed for.

Gopher's and C4's rules were tuned on web pages of a few thousand characters. Judged as one document, a
whole book repeats its 5-grams enough to fail them and is lost whole. Cut into sections first (a heading
starts a new unit when the current one is big enough, paragraph groups otherwise), each unit is kept or
dropped on its own, so no rule can drop more than its unit.

The cut is lossless: every unit carries the separator that followed it, and `join_units` of all units
returns the text exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"(\n[^\S\n]*\n(?:[^\S\n]*\n)*)")  # blank lines; indentation stays with the text
# a heading line: markdown, numbered or named parts of books and plays, an rst underline, a roman numeral
_HEADING = re.compile(
    r"^(#{1,6}\s\S|(chapter|book|part|act|scene|section|canto|letter|volume|appendix|prologue|epilogue)\b"
    r"|[IVXLC]+\.?\s*$|[IVXLC]+\.\s+\S|\d{1,3}(\.\d+)*\.?\s+[A-Z]|.+\n[=\-~^*#]{3,}\s*$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Unit:
    """A piece of a document and the separator (blank lines, a newline or nothing) that followed it."""

    text: str
    sep: str = ""


def cut_units(text: str, max_chars: int) -> list[Unit]:
    """`text` as one unit when it fits in `max_chars`, else as sections of at most about `max_chars`.

    A unit ends before a heading once it holds a quarter of `max_chars`, or before the paragraph that would
    take it past `max_chars`; a paragraph longer than `max_chars` is cut at lines, a line at a space. A last
    unit under a quarter of `max_chars` joins the one before it.
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return [Unit(text)]
    units: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for piece, sep in _pieces(text, max_chars):
        heading = _is_heading(piece)
        if current and (size + len(piece) > max_chars or (heading and size >= max_chars // 4)):
            units.append(current)
            current, size = [], 0
        current.append((piece, sep))
        size += len(piece) + len(sep)
    if current:
        if units and size < max_chars // 4:
            units[-1].extend(current)
        else:
            units.append(current)
    out = []
    for pieces in units:
        body = "".join(p + s for p, s in pieces[:-1]) + pieces[-1][0]
        out.append(Unit(body, pieces[-1][1]))
    return out


def join_units(units: list[Unit]) -> str:
    """The text of `units` in order, each followed by its separator except the last."""
    if not units:
        return ""
    return "".join(u.text + u.sep for u in units[:-1]) + units[-1].text


def _pieces(text: str, max_chars: int):
    """(paragraph, separator) pairs; paragraphs over `max_chars` cut at newlines, lines at spaces."""
    parts = _PARAGRAPH_BREAK.split(text)
    for i in range(0, len(parts), 2):
        paragraph, sep = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
        if len(paragraph) <= max_chars:
            yield paragraph, sep
            continue
        lines = paragraph.split("\n")
        for j, line in enumerate(lines):
            line_sep = "\n" if j < len(lines) - 1 else sep
            chunks = _split_line(line, max_chars)
            for k, chunk in enumerate(chunks):
                yield chunk, line_sep if k == len(chunks) - 1 else ""


def _split_line(line: str, max_chars: int) -> list[str]:
    chunks = []
    while len(line) > max_chars:
        cut = line.rfind(" ", max_chars // 2, max_chars)
        cut = cut + 1 if cut > 0 else max_chars
        chunks.append(line[:cut])
        line = line[cut:]
    return [*chunks, line]


def _is_heading(piece: str) -> bool:
    first = piece.lstrip("\n").split("\n", 2)
    head = "\n".join(first[:2]) if len(first) > 1 and re.fullmatch(r"[=\-~^*#]{3,}\s*", first[1]) else first[0]
    return len(first[0]) <= 80 and bool(_HEADING.match(head.strip()))
