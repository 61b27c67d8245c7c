"""Our cleaning steps as datatrove pipeline steps: a filter answers keep / (drop, reason), a formatter
rewrites text; datatrove's base classes count documents and reasons and write dropped documents."""

from __future__ import annotations

import re
import unicodedata

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters.base import BaseFormatter

from lightning_llm.data.cleaning.code_blocks import FENCE

_HTML_START = re.compile(r"^\s*(<!doctype html|<html|<head|<body|<div|<p[\s>])", re.IGNORECASE)
_HSPACE = re.compile(r"(?<=\S)[^\S\n]+")  # inside a line: indentation is kept (code, verse)
# C0/C1 controls except tab/newline, zero-width and bidi marks, BOM: invisible, never content
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_GUTENBERG_END = re.compile(r"^(\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
                            re.IGNORECASE | re.MULTILINE)


def looks_like_html(doc: Document) -> bool:
    return doc.metadata.get("format") == "html" or bool(_HTML_START.match(doc.text[:512]))


class HtmlToText(BaseFilter):
    """Main text of HTML documents (scripts, styles, navigation dropped; entities decoded; paragraphs
    kept); other documents pass untouched. Empty extraction drops the document ("html_no_text")."""

    name = "🌐 html to text"

    def __init__(self, extractor: str = "resiliparse", main_content: bool = True, exclusion_writer=None):
        super().__init__(exclusion_writer)
        if extractor not in ("resiliparse", "trafilatura"):
            raise ValueError(f"data.cleaning.html.extractor={extractor!r}: use resiliparse or trafilatura")
        self.extractor, self.main_content = extractor, main_content

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not looks_like_html(doc):
            return True
        doc.text = self.extract(doc.text)
        doc.metadata["format"], doc.metadata["html"] = "text", True
        return True if doc.text.strip() else (False, "html_no_text")

    def extract(self, html: str) -> str:
        if self.extractor == "trafilatura":
            import trafilatura

            return trafilatura.extract(html, favor_recall=not self.main_content, include_comments=False) or ""
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(html)
        # fence code blocks, so the docs profile can tell code from prose and leave code alone
        for pre in tree.body.query_selector_all("pre") if tree.body is not None else []:
            if pre.first_child is None:
                continue
            pre.insert_before(tree.create_text_node("```\n"), pre.first_child)
            pre.append_child(tree.create_text_node("```" if pre.text.endswith("\n") else "\n```"))
        return extract_plain_text(tree, main_content=self.main_content, alt_texts=False, links=False)


class GutenbergBoilerplate(BaseFormatter):
    """Cuts the Project Gutenberg license header and footer around the book."""

    name = "📚 gutenberg boilerplate"

    def format(self, text: str) -> str:
        if start := _GUTENBERG_START.search(text):
            text = text[start.end():]
        if end := _GUTENBERG_END.search(text):
            text = text[: end.start()]
        return text


class Normalize(BaseFormatter):
    """Unicode repair (ftfy) and normalization, invisible characters removed, whitespace normalized:
    runs of spaces inside a line collapsed (indentation and fenced code kept as they are), trailing spaces
    cut, at most `max_blank_lines` blank lines, optional symbol stripping (a regex character class such as "[•■►]")."""

    name = "🔤 normalize"

    def __init__(self, fix_unicode: bool = True, normalization: str | None = "NFC", max_blank_lines: int = 2,
                 strip_symbols: str | None = None):
        super().__init__()
        self.fix_unicode, self.normalization = fix_unicode, normalization
        self.blank_lines = re.compile(rf"\n{{{max_blank_lines + 2},}}")
        self.max_blank_lines = max_blank_lines
        self.symbols = re.compile(strip_symbols) if strip_symbols else None

    def format(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if self.fix_unicode:
            import ftfy

            text = ftfy.fix_text(text, normalization=self.normalization)
        elif self.normalization:
            text = unicodedata.normalize(self.normalization, text)
        text = _INVISIBLE.sub("", text)
        if self.symbols is not None:
            text = self.symbols.sub("", text)
        lines, in_fence = [], False
        for line in text.split("\n"):
            if FENCE.match(line):
                in_fence = not in_fence
            lines.append(line.rstrip() if in_fence else _HSPACE.sub(" ", line).rstrip())
        return self.blank_lines.sub("\n" * (self.max_blank_lines + 1), "\n".join(lines)).strip()


class LengthFilter(BaseFilter):
    """Drops empty documents ("empty"), those under `min_chars` ("too_short") or over `max_chars`
    ("too_long": one giant document would dominate a shard and the filters' memory)."""

    name = "📏 length"

    def __init__(self, min_chars: int = 1, max_chars: int | None = None, exclusion_writer=None):
        if min_chars == 0:  # the early size check, before any other step (named before stats are set up)
            self.name = "📏 max length"
        super().__init__(exclusion_writer)
        self.min_chars, self.max_chars = min_chars, max_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        self.stat_update("chars_in", value=len(doc.text))
        if self.max_chars and len(doc.text) > self.max_chars:
            return _drop(self, doc, "too_long")
        n = len(doc.text.strip())
        if n == 0 and self.min_chars > 0:
            return _drop(self, doc, "empty")
        if n < self.min_chars:
            return _drop(self, doc, "too_short")
        return True


def _drop(step, doc: Document, reason: str) -> tuple[bool, str]:
    """A drop with its reason, its characters counted for the mass-loss guard."""
    step.stat_update(f"chars_dropped_{reason}", value=len(doc.text))
    return False, reason


class MaskPII(BaseFormatter):
    """Replaces e-mail addresses, IP addresses and phone numbers with configurable tokens."""

    name = "🕵️ pii"

    EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
    IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
    IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b")
    # +country, optional area code in parentheses, 7+ digits in groups separated by space, dot or dash
    PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,3}(?![\w.])")

    def __init__(self, email: str | None = "<EMAIL>", ip: str | None = "<IP>", phone: str | None = "<PHONE>"):
        super().__init__()
        self.rules = [(rx, token) for rx, token in ((self.EMAIL, email), (self.IPV4, ip), (self.IPV6, ip),
                                                    (self.PHONE, phone)) if token is not None]

    def format(self, text: str) -> str:
        for rx, token in self.rules:
            phone = rx is MaskPII.PHONE
            text = rx.sub(lambda m, t=token, p=phone: t if _is_pii(m.group(0), p) else m.group(0), text)
        return text


def _is_pii(match: str, phone: bool) -> bool:
    if not phone:
        return True
    digits = sum(c.isdigit() for c in match)
    # years, dates and small numbers look like digit groups; real phone numbers carry 7-15 digits
    return 7 <= digits <= 15 and not re.fullmatch(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}", match)


class LanguageFilter(BaseFilter):
    """Keeps documents whose language (langid.py, which ships its model: works offline) is one of
    `languages` with probability >= `min_score`; drops others as "language"."""

    name = "🌍 language"

    def __init__(self, languages: list[str] | None = None, min_score: float = 0.5, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.languages, self.min_score = set(languages or ["en"]), min_score
        self._identifier = None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._identifier is None:
            from langid.langid import LanguageIdentifier, model

            self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        lang, score = self._identifier.classify(doc.text[:20_000])
        doc.metadata["language"], doc.metadata["language_score"] = lang, round(float(score), 4)
        self.stat_update("chars_in", value=len(doc.text))
        return (lang in self.languages and score >= self.min_score) or _drop(self, doc, "language")
