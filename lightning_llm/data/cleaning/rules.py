"""The quality rules of a profile, judged unit by unit: a long document is cut into units first, each unit
is kept or dropped on its own (no rule drops more than its unit), and the kept units go on as documents of
their own that remember their document (`document`, `unit`, `unit_sep`); the pipeline joins them again
after dedup.

Stats (for the report and the mass-loss guard): documents and units in, units dropped by reason, the
characters judged, dropped by reason and removed by C4's line rules, and the documents of each profile.
"""

from __future__ import annotations

import contextlib
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import get_filter_result

from lightning_llm.data.cleaning.code_blocks import ends_in_fence, segments
from lightning_llm.data.cleaning.profiles import PROFILES, Profile, choose_profile, resolve, without_speakers
from lightning_llm.data.cleaning.units import Unit, cut_units
from lightning_llm.errors import UserError


class QualityRules(PipelineStep):
    """Runs the rules of `profile` (or, for `auto`, of the profile each document is given) on every unit.

    Args:
        profile: auto | web | books | docs | dialogue.
        overrides: per rule ("c4_lines", "gopher_quality", "gopher_repetition"), arguments that replace the
            profile's; None switches a rule off for every profile.
        unit_chars: documents longer than this are cut into units of about this size; None judges them whole.
    """

    name = "⚖️ quality rules"
    type = "🔻 - FILTER"

    def __init__(self, profile: str = "auto", overrides: dict[str, dict | None] | None = None,
                 unit_chars: int | None = 20_000, exclusion_writer=None):
        super().__init__()
        names = list(PROFILES) if profile == "auto" else [profile]
        self.profile, self.unit_chars, self.exclusion_writer = profile, unit_chars, exclusion_writer
        self.profiles: dict[str, Profile] = {n: resolve(n, overrides or {}) for n in names}
        self.rules = {n: _build(p) for n, p in self.profiles.items()}

    def run(self, data, rank: int = 0, world_size: int = 1):
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                with self.track_time():
                    kept, dropped = self._judge_document(doc)
                for unit_doc in dropped:
                    if writer is not None:
                        writer.write(unit_doc, rank)
                for unit_doc in kept:
                    self.update_doc_stats(unit_doc)
                    yield unit_doc

    def _judge_document(self, doc: Document) -> tuple[list[Document], list[Document]]:
        profile = self.profile if self.profile != "auto" else choose_profile(doc)
        self.stat_update("total")
        self.stat_update(f"profile_{profile}")
        self.stat_update(f"profile_{profile}_chars", value=len(doc.text))
        self.stat_update("chars_in", value=len(doc.text))
        units = cut_units(doc.text, self.unit_chars) if self.unit_chars else [Unit(doc.text)]
        self.stat_update("units", value=len(units))
        kept: list[tuple[int, str, str]] = []
        dropped: list[Document] = []
        lost: dict[str, int] = {}
        in_fence = False  # a unit may start inside a code block that an earlier unit opened
        for i, unit in enumerate(units):
            text, reason = self.judge(unit.text, profile, in_fence, indented=not doc.metadata.get("html"))
            if self.profiles[profile].prose_only:
                in_fence = ends_in_fence(unit.text, in_fence)
            if reason is None:
                kept.append((i, text, unit.sep))
                # whitespace the line rules strip is not text lost
                self.stat_update("chars_removed_by_lines", value=_visible(unit.text) - _visible(text))
                continue
            lost[reason] = lost.get(reason, 0) + len(unit.text)
            self.stat_update(f"units_dropped_{reason}")
            self.stat_update(f"chars_dropped_{reason}", value=len(unit.text))
            dropped.append(Document(text=unit.text, id=f"{doc.id}/{i}",
                                    metadata={**doc.metadata, "filter_reason": reason, "profile": profile}))
        if not kept:
            reason = max(lost, key=lost.get)
            self.stat_update("dropped")
            self.stat_update(f"dropped_{reason}")
            return [], dropped
        self.stat_update("forwarded")
        if len(units) == 1:
            doc.text = kept[0][1]
            doc.metadata["profile"] = profile
            return [doc], dropped
        meta = {**doc.metadata, "profile": profile, "document": doc.id}
        return [Document(text=text, id=f"{doc.id}/{i}", metadata={**meta, "unit": i, "unit_sep": sep})
                for i, text, sep in kept], dropped

    def judge(self, text: str, profile: str, in_fence: bool = False, indented: bool = True) -> tuple[str, str | None]:
        """The unit's text after the line rules, and the reason it is dropped (None: kept). `in_fence`: the unit
        starts inside a code block; `indented`: indented blocks are code (not in text extracted from HTML)."""
        rules = self.rules[profile]
        if self.profiles[profile].prose_only:
            parts = segments(text, in_fence, indented)
            if not any(t.strip() for is_code, t in parts if not is_code):
                return text, None  # code only: nothing for prose rules to judge
            if "c4_lines" in rules:
                # page rules (sentences, lorem ipsum, braces) judge all the prose; line rules edit each prose run
                prose = Document(text="\n".join(t for is_code, t in parts if not is_code), id="")
                keep, reason = get_filter_result(rules["c4_lines"].filter(prose))
                if not keep:
                    return text, reason or "c4_lines"
                edited = []
                for is_code, part in parts:
                    if is_code or not part.strip():
                        edited.append((is_code, part))
                        continue
                    d = Document(text=part, id="")
                    rules["c4_line_edits"].filter(d)
                    edited.append((False, d.text))
                parts = edited
                text = "\n".join(t for _, t in parts)
            judged = "\n".join(t for is_code, t in parts if not is_code)
            code_heavy = len(judged) < 0.5 * len(text)
        else:
            code_heavy = False
            if "c4_lines" in rules:
                d = Document(text=text, id="")
                keep, reason = get_filter_result(rules["c4_lines"].filter(d))
                if not keep:
                    return text, reason or "c4_lines"
                text = d.text
            judged = text
        if self.profiles[profile].strip_speakers:
            judged = without_speakers(judged)
        if not judged.strip():
            return text, "no_text_after_line_rules"
        for name in ("gopher_quality", "gopher_repetition"):
            if code_heavy and name == "gopher_quality":
                name = "gopher_quality_code_heavy"
            if name in rules:
                keep, reason = get_filter_result(rules[name].filter(Document(text=judged, id="")))
                if not keep:
                    return text, reason or name
        return text, None


def _visible(text: str) -> int:
    return len("".join(text.split()))


def _build(profile: Profile) -> dict[str, Any]:
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    out = {}
    for name, cls in (("c4_lines", C4QualityFilter), ("gopher_quality", GopherQualityFilter),
                      ("gopher_repetition", GopherRepetitionFilter)):
        args = getattr(profile, name)
        if args is None:
            continue
        try:
            out[name] = cls(**_tuples(args))
        except TypeError as e:
            raise UserError(f"data.cleaning.{name}: {cls.__name__} does not take these arguments {args}: {e}") from e
    if profile.prose_only and "gopher_quality" in out:
        out["gopher_quality_code_heavy"] = GopherQualityFilter(**{**_tuples(profile.gopher_quality),
                                                                  "min_doc_words": None})
    if profile.prose_only and "c4_lines" in out:
        out["c4_line_edits"] = C4QualityFilter(**{**_tuples(profile.c4_lines), "min_num_sentences": -1,
                                                  "filter_lorem_ipsum": False, "filter_curly_bracket": False})
    return out


def _tuples(args: dict) -> dict:
    """Hydra gives lists where datatrove's n-gram settings want tuples of (n, fraction)."""
    return {k: tuple(tuple(x) if isinstance(x, list | tuple) else x for x in v)
            if isinstance(v, list | tuple) and v and isinstance(v[0], list | tuple) else v for k, v in args.items()}
