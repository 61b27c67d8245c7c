"""Cleaning profiles: which quality rules run, with which thresholds, for each kind of text.

Gopher's and C4's rules were designed for web pages. On other good text they misfire: C4 deletes every
verse line and speaker name of a play (no terminal punctuation), Gopher counts punctuation-dense dialogue
as symbols, and code in documentation fails the alphabetic-word and stop-word rules. A profile keeps the
rules that still separate good text from junk for its kind and relaxes the ones that do not:

- web: pages of a crawl: C4's page rules (sentences, javascript/policy lines, lorem ipsum, braces), Gopher
  quality and repetition as published; code blocks judged as code.
- books: long prose and verse; no line rules (hard-wrapped lines, verse), repetition n-grams relaxed
  (a chapter of a book repeats more 5-grams than a web page: names, refrains, formulas).
- docs: software documentation; code blocks are left out of the prose statistics and never edited,
  C4's line rules are off (headings, list items and signatures end without punctuation).
- dialogue: plays, transcripts, chats; speaker names repeat on every other line and lines are short.

`auto` (the default) picks one per document from the source and the text itself (`choose_profile`); the
cleaning report counts the documents and characters each profile judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from datatrove.data import Document

from lightning_llm.data.cleaning.code_blocks import split_code

# Gopher's duplicate n-gram thresholds, (5, 0.15) ... (10, 0.10), about doubled
_RELAXED_DUP_N_GRAMS = ((5, 0.3), (6, 0.28), (7, 0.26), (8, 0.24), (9, 0.22), (10, 0.2))
_LINES_OFF = {"filter_no_terminal_punct": False, "min_words_per_line": -1, "min_num_sentences": -1}


@dataclass(frozen=True)
class Profile:
    """The arguments of each rule (datatrove's C4QualityFilter, GopherQualityFilter,
    GopherRepetitionFilter), None for a rule that does not run; `prose_only`: judge prose, not code;
    `strip_speakers`: Gopher judges speeches without their speaker tags. With `prose_only`, a unit that is
    mostly code is not held to `min_doc_words`."""

    c4_lines: dict | None = field(default_factory=dict)
    gopher_quality: dict | None = field(default_factory=dict)
    gopher_repetition: dict | None = field(default_factory=dict)
    prose_only: bool = False
    strip_speakers: bool = False  # judge speeches without their speaker tags ("A:", "Ham.")


PROFILES: dict[str, Profile] = {
    "web": Profile(
        # C4's line rules delete good text of articles (headings, list items, captions, lines ending in ":"):
        # the main-content extraction already drops navigation. Its page rules stay: at least 5 sentences,
        # javascript and cookie/policy lines, lorem ipsum (braces: code is judged as code here).
        c4_lines={"filter_no_terminal_punct": False, "min_words_per_line": -1, "filter_curly_bracket": False},
        # Gopher capped pages at 100,000 words; units bound the size here, so the cap would only drop books.
        # Recipes, lists and references hold numbers and units: 70% of words with a letter, not 80%.
        gopher_quality={"max_doc_words": None, "max_non_alpha_words_ratio": 0.7},
        # repeated short lines ("ADVERTISEMENT", "Share", bullets) inflate the counted fractions of duplicate
        # lines and paragraphs, and FAQ and wiki pages repeat their phrasing: the character fractions stay, the
        # n-gram thresholds are about doubled (spam repeats far more)
        gopher_repetition={"dup_line_frac": None, "dup_para_frac": None, "dup_n_grams": _RELAXED_DUP_N_GRAMS},
        prose_only=True,  # code in tech articles and blog posts is judged as code, not as prose
    ),
    "books": Profile(
        c4_lines={**_LINES_OFF, "filter_curly_bracket": False, "filter_javascript": False, "filter_policy": False,
                  "remove_citations": False},
        gopher_quality={"max_doc_words": None, "max_non_alpha_words_ratio": 0.7},
        gopher_repetition={"dup_line_frac": None, "dup_line_char_frac": None,
                           "top_n_grams": ((2, 0.3), (3, 0.25), (4, 0.2)),
                           "dup_n_grams": _RELAXED_DUP_N_GRAMS},
    ),
    "docs": Profile(
        c4_lines={**_LINES_OFF, "filter_curly_bracket": False, "filter_javascript": False, "remove_citations": False},
        # API references and changelogs are dense in identifiers, versions and punctuation (60% of words with
        # a letter, not 80%); configuration keys and qualified names make long "words" (celery's
        # broker_connection_retry_on_startup); a unit that is mostly code needs no 50 words of prose
        gopher_quality={"max_doc_words": None, "max_non_alpha_words_ratio": 0.6, "max_bullet_lines_ratio": 1.0,
                        "max_avg_word_length": 15},
        # reference pages repeat short paragraphs ("[source]", "Read more", "Returns a copy of the value.") and
        # their phrasing ("This type is available only if Syn is built with the "full" feature.")
        gopher_repetition={"dup_line_frac": None, "dup_line_char_frac": None, "dup_para_frac": None,
                           "dup_para_char_frac": None, "dup_n_grams": _RELAXED_DUP_N_GRAMS},
        prose_only=True,
    ),
    "dialogue": Profile(
        # the default recipe's Shakespeare settings: verse and speaker-name lines pass C4; its
        # javascript/policy/lorem rules stay on; some stage directions open with "{" by mistake
        c4_lines={**_LINES_OFF, "filter_curly_bracket": False},
        # dialogue is dense in punctuation tokens (~78-84% of word tokens hold a letter, around Gopher's 80%),
        # in short words ("Hi", "OK") and speaker tags, and a short exchange is a whole conversation
        gopher_quality={"max_doc_words": None, "max_non_alpha_words_ratio": 0.7, "min_avg_word_length": 2,
                        "min_doc_words": 20},
        # speaker names repeat on thousands of lines ("Ham.", "User:"), questions and formulas recur
        gopher_repetition={"dup_line_frac": None, "dup_line_char_frac": None,
                           "top_n_grams": ((2, 0.3), (3, 0.25), (4, 0.2)),
                           "dup_n_grams": _RELAXED_DUP_N_GRAMS},
        strip_speakers=True,
    ),
}

# "Ham.", "KING HENRY.", "User:", "A:" opening a line (alone, or before the speech), or "HERMIA" alone
_NAME = r"[A-Z][A-Za-z'\-]*\.?( [A-Z][A-Za-z'\-]*\.?){0,2}"  # "Ham", "KING HENRY", "User", "A"
_CAPS_NAME = r"[A-Z][A-Z'\- ]{1,30}"
_SPEAKER = re.compile(rf"^\s*({_NAME}[:.](\s|$)|{_CAPS_NAME}$)")
_BOOK_CHARS = 50_000


def without_speakers(text: str) -> str:
    """Speeches without the speaker tags that open their lines."""
    return "\n".join(_TAG.sub("", line) for line in text.split("\n") if not _TAG_ALONE.match(line))


_TAG = re.compile(rf"^\s*{_NAME}:\s+")
_TAG_ALONE = re.compile(rf"^\s*({_NAME}[:.]|{_CAPS_NAME})\s*$")


def choose_profile(doc: Document) -> str:
    """The profile for a document under `profile: auto`.

    Documentation with code (fenced, indented or prompt lines: at least 5% of the characters) -> docs;
    speaker-tagged lines (at least 12% of 10+ lines) -> dialogue; other HTML pages and records of
    JSONL/Parquet/CSV files -> web; whole plain-text files and texts of 50,000+ characters -> books.
    """
    text = doc.text
    _, code = split_code(text)
    if code >= 0.05 * max(1, len(text)):
        return "docs"
    lines = [line for line in text[:200_000].split("\n") if line.strip()]
    if len(lines) >= 10 and sum(1 for line in lines if _SPEAKER.match(line)) >= 0.12 * len(lines):
        return "dialogue"
    if doc.metadata.get("html") or doc.metadata.get("format") == "html":
        return "web"
    if doc.metadata.get("format") == "text" or len(text) >= _BOOK_CHARS:
        return "books"
    return "web"


def resolve(name: str, overrides: dict[str, dict | None]) -> Profile:
    """Profile `name` with the user's overrides of its rule arguments: a rule given as None is off; an argument
    given as None keeps the profile's value."""
    from lightning_llm.errors import UserError

    if name not in PROFILES:
        raise UserError(f"data.cleaning.profile={name!r} is not a profile; use auto or one of {sorted(PROFILES)}")
    base = PROFILES[name]
    rules = {}
    for rule in ("c4_lines", "gopher_quality", "gopher_repetition"):
        own = getattr(base, rule)
        extra = overrides.get(rule, {})
        rules[rule] = None if own is None or extra is None else \
            {**own, **{k: v for k, v in extra.items() if v is not None}}
    return Profile(**rules, prose_only=base.prose_only, strip_speakers=base.strip_speakers)
