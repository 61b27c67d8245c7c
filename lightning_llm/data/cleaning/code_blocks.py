"""Tell code from prose, so prose statistics (alphabetic words, stop words, n-gram repetition) judge prose.

Code in documentation is fenced by the HTML step (```` ``` ```` around every `<pre>`), fenced in Markdown,
indented in Markdown and reStructuredText, or typed at a prompt (`>>>`, `$`); API references also print
signatures as lines of their own (`create_session(dburi, **kwargs)[source]`, `fn clone(&self) -> Self`).
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^\s*(```|~~~)[\w+.-]*\s*$")  # a fence line holds nothing else (a language at most)
_PROMPT = re.compile(r"^\s*(>>>|\$|In \[\d+\]:)(\s|$)")
_SIGNATURE = re.compile(r"^\s*((pub(\(\w+\))? |async |unsafe |const |static |final |abstract )*"
                        r"(fn|impl|struct|enum|trait|type|def|class|function|func|interface)\s+\S.*[(<{:].*"
                        r"|[\w.:<>]+\(.*\)\s*(->\s*\S.*|:\s*\S.*)?(\[source\])?"
                        r"|(class|exception|property|attribute|method|classmethod|staticmethod|data)\s+[\w.]+(\W.*)?"
                        r"|.*\[source\])\s*$")
_SYMBOLS = set("(){}[]<>=;&*|\\/_:#@$%^~`+")


def looks_like_code(line: str) -> bool:
    """A signature or a line dense in code symbols that does not end like a sentence."""
    stripped = line.strip()
    if not stripped or (stripped.endswith((".", "!", "?", '"', "'")) and not stripped.endswith("...")):
        return False
    if _SIGNATURE.match(stripped):
        return True
    chars = [c for c in stripped if not c.isspace()]
    return len(chars) >= 8 and sum(c in _SYMBOLS for c in chars) >= 0.15 * len(chars)


def segments(text: str, in_fence: bool = False, indented: bool = True) -> list[tuple[bool, str]]:
    """Runs of lines as (is_code, text); "\\n".join of the texts is `text`. `in_fence`: the text starts inside a
    fenced block (a unit cut from the middle of one); `indented`: indented blocks are code (Markdown, rst; not
    text extracted from HTML, where indentation is list nesting and code comes fenced)."""
    out: list[tuple[bool, list[str]]] = []
    in_indented = False
    previous_blank = True
    for line in text.split("\n"):
        blank = not line.strip()
        if FENCE.match(line):
            is_code, in_fence = True, not in_fence
        elif in_fence:
            is_code = True
        else:
            is_indented = indented and line.startswith(("    ", "\t")) and not blank
            # an indented block starts after a blank line (a wrapped list item's continuation does not)
            in_indented = (is_indented and (in_indented or previous_blank)) or (in_indented and blank)
            is_code = in_indented or bool(_PROMPT.match(line)) or looks_like_code(line)
        if out and out[-1][0] == is_code:
            out[-1][1].append(line)
        else:
            out.append((is_code, [line]))
        previous_blank = blank
    return [(is_code, "\n".join(lines)) for is_code, lines in out]


def ends_in_fence(text: str, in_fence: bool = False) -> bool:
    """Whether a fenced block is still open at the end of `text`."""
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
    return in_fence


def split_code(text: str) -> tuple[str, int]:
    """The prose of `text` (code lines left out) and the number of code characters left out."""
    parts = segments(text)
    return "\n".join(t for is_code, t in parts if not is_code), sum(len(t) + 1 for is_code, t in parts if is_code)
