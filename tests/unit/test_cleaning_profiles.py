"""Profiles per kind of text, unit cutting of long documents, code left out of prose statistics, and the
guard against mass loss."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from datatrove.data import Document

from lightning_llm.data.cleaning.code_blocks import segments, split_code
from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.profiles import PROFILES, choose_profile, resolve
from lightning_llm.data.cleaning.rules import QualityRules
from lightning_llm.data.cleaning.steps import HtmlToText, Normalize
from lightning_llm.data.cleaning.units import cut_units, join_units
from lightning_llm.data.config import DataConfig
from lightning_llm.data.pipeline import clean
from lightning_llm.errors import UserError
from tests.conftest import make_document

PROSE = ("The committee met on Tuesday to discuss the new library. It was decided that the doors would open at "
         "nine in the morning and close at six in the evening, and that children would be welcome at all hours. ")


def book(rng: random.Random, chapters: int, paragraphs: int = 12) -> str:
    """A book-like text: a title, numbered chapters of prose paragraphs (normalized, as the rules see it)."""
    parts = ["THE LONG BOOK\n\nby A. Writer\n"]
    for c in range(1, chapters + 1):
        body = "\n\n".join(" ".join(make_document(rng, sentences=6).split("\n")) for _ in range(paragraphs))
        parts.append(f"\n\nCHAPTER {c}\n\n{body}")
    return Normalize().format("".join(parts))


@pytest.mark.parametrize("seed", range(6))
def test_units_lose_and_duplicate_nothing_at_their_boundaries(seed):
    rng = random.Random(seed)
    pieces = [book(rng, 4), "x" * 9_000, "one very long line " * 900, "\n\n\n   indented start\n", "short"]
    text = "\n\n".join(rng.sample(pieces, len(pieces)))
    for max_chars in (500, 3_000, 20_000):
        units = cut_units(text, max_chars)
        assert join_units(units) == text  # all units, each with its separator: the text exactly
        assert len(units) > 1  # longer than a unit: cut
        assert all(len(u.text) <= max_chars * 1.25 + 1 for u in units)
        assert all(u.text for u in units)
    assert cut_units("short text", 100)[0].text == "short text"


def test_a_unit_starts_at_a_chapter_heading():
    text = book(random.Random(0), 6)
    units = cut_units(text, 6_000)
    assert len(units) > 3 and sum(u.text.lstrip().startswith("CHAPTER") for u in units) >= len(units) - 1


def test_each_profile_runs_its_rules_with_its_thresholds():
    web, books, docs, dialogue = (resolve(n, {}) for n in ("web", "books", "docs", "dialogue"))
    assert web.c4_lines.get("filter_policy", True) and "top_n_grams" not in web.gopher_repetition  # as published
    assert web.gopher_repetition["dup_para_frac"] is None  # repeated "ADVERTISEMENT" lines are not text
    assert "min_num_sentences" not in web.c4_lines  # C4's page rules stay, its line rules go
    for p in (web, books, docs, dialogue):  # no line rules: verse, speaker names, headings, list items
        assert p.c4_lines["filter_no_terminal_punct"] is False and p.c4_lines["min_words_per_line"] == -1
    assert books.gopher_repetition["dup_n_grams"][0] == (5, 0.3)  # relaxed for chapters
    assert dialogue.gopher_repetition["dup_line_frac"] is None  # speaker names repeat
    assert docs.prose_only and web.prose_only and not books.prose_only
    assert docs.c4_lines["filter_curly_bracket"] is False
    assert all(p.gopher_quality["max_doc_words"] is None for p in PROFILES.values())  # units bound the size
    mine = resolve("books", {"gopher_quality": {"min_stop_words": 5}, "c4_lines": None})
    assert mine.gopher_quality["min_stop_words"] == 5 and mine.gopher_quality["max_non_alpha_words_ratio"] == 0.7
    assert mine.c4_lines is None
    with pytest.raises(UserError, match=r"data\.cleaning\.profile=.novel."):
        resolve("novel", {})
    with pytest.raises(UserError, match=r"data\.cleaning\.gopher_quality"):
        QualityRules("web", {"gopher_quality": {"min_words": 3}})


def test_the_cleaning_group_selects_a_profile_and_the_default_recipe_keeps_its_settings():
    from hydra import compose, initialize_config_dir

    from lightning_llm.cli._app import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        default = compose("train")
        docs = compose("train", overrides=["cleaning=docs", "data.cleaning.gopher_quality.min_stop_words=1"])
        prep = compose("prepare", overrides=["cleaning=books"])
    assert default.data.cleaning.profile == "auto" and default.data.cleaning.units.max_chars == 20_000
    assert docs.data.cleaning.profile == "docs" and docs.data.cleaning.gopher_quality.min_stop_words == 1
    assert prep.data.cleaning.profile == "books"


def test_auto_chooses_a_profile_from_the_source_and_the_text():
    rng = random.Random(1)
    code_page = PROSE + "\n\n```\nimport os\nfor name in os.listdir('.'):\n    print(name)\n```\n" + PROSE
    play = "\n".join(f"{'Ham.' if i % 2 else 'Hor.'}\n{make_document(rng, 1)}" for i in range(20))
    chat = "\n".join(f"{'AB'[i % 2]}: {make_document(rng, 1)}" for i in range(20))
    assert choose_profile(Document(text=code_page, id="a", metadata={"html": True})) == "docs"
    assert choose_profile(Document(text=play, id="b", metadata={"format": "text"})) == "dialogue"
    assert choose_profile(Document(text=chat, id="c", metadata={})) == "dialogue"
    assert choose_profile(Document(text=book(rng, 2), id="d", metadata={"format": "text"})) == "books"
    assert choose_profile(Document(text=PROSE * 5, id="e", metadata={"html": True})) == "web"
    assert choose_profile(Document(text=PROSE * 5, id="f", metadata={})) == "web"  # a record of a JSONL crawl


def test_a_junk_chapter_is_dropped_alone_and_the_rest_of_the_book_is_kept_exactly():
    rng = random.Random(2)
    text = book(rng, 12)
    junk = "\n\nCHAPTER 13\n\n" + "\n".join(["Buy cheap watches now at the best price today!"] * 100)
    rules = QualityRules("books", unit_chars=8_000)
    kept, dropped = rules._judge_document(Document(text=text + junk, id="book", metadata={"format": "text"}))
    assert len(dropped) == 1 and dropped[0].text.startswith("CHAPTER 13") and dropped[0].metadata["filter_reason"]
    assert len(kept) > 3 and all(d.metadata["document"] == "book" for d in kept)
    assert join_units_of(kept) == text  # nothing lost, nothing twice, around the dropped unit
    assert rules.stats["units"].total == len(kept) + 1 and rules.stats["forwarded"].total == 1
    assert rules.stats["chars_dropped_gopher_enough_stop_words"].total == len(dropped[0].text)


def test_a_long_book_is_kept_exactly_by_its_profile():
    text = book(random.Random(3), 40)  # ~200 kB: 10+ units
    kept, dropped = QualityRules("books")._judge_document(Document(text=text, id="b", metadata={"format": "text"}))
    assert not dropped and len(kept) >= 10 and join_units_of(kept) == text


def join_units_of(docs: list[Document]) -> str:
    return "".join(d.text + (d.metadata.get("unit_sep", "") if i < len(docs) - 1 else "") for i, d in
                   enumerate(docs))


def test_docs_leave_code_out_of_prose_statistics_and_never_edit_it():
    code = "\n".join(f"result_{i} = compute(x[{i}], y={{'k': {i}}})\n    # step {i}" for i in range(60))
    after = ("Each call returns a new result object, which you can pass on to the next function or keep for "
             "later. The values are computed once and cached, so asking again is cheap.")
    page = f"Usage\n\n{PROSE}\n\n```\n{code}\n```\n\n{after}"
    assert split_code(page)[1] > len(code)
    assert "\n".join(t for _, t in segments(page)) == page
    assert QualityRules("books").judge(page, "books")[1] is not None  # code read as prose fails prose rules
    text, reason = QualityRules("docs").judge(page, "docs")
    assert reason is None and code in text  # indentation, braces and all
    kept, dropped = QualityRules("docs", unit_chars=2_000)._judge_document(Document(text=page, id="p"))
    assert not dropped and len(kept) > 1  # units cut inside the code block still know it is code
    html = f"<html><body><main><h1>Usage</h1><p>{PROSE}</p><pre><code>{code}\n</code></pre></main></body></html>"
    d = Document(text=html, id="p", metadata={"format": "html"})
    HtmlToText().filter(d)
    d.text = Normalize().format(d.text)
    assert f"```\n{code}\n```" in d.text and d.metadata["html"] and choose_profile(d) == "docs"


def _files(tmp_path: Path, texts: dict[str, str]) -> list[str]:
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    return [str(tmp_path / n) for n in texts]


def test_mass_loss_is_warned_about_and_an_error_when_asked(tmp_path, caplog):
    rng = random.Random(4)
    good = {f"good{i}.jsonl": json.dumps({"text": PROSE + make_document(rng, 30)}) + "\n" for i in range(3)}
    junk = {"spam.jsonl": "\n".join(json.dumps({"text": "\n".join([f"Buy cheap watches {i} now!"] * 200)})
                                    for i in range(4)) + "\n"}
    files = _files(tmp_path, {**good, **junk})
    data = DataConfig(data_files={"train": files}, cleaning=CleaningConfig(profile="web", near_dedup=None))
    with caplog.at_level(logging.WARNING):
        clean(data, tmp_path / "work")
    report = json.loads((tmp_path / "work" / "cleaning_report.json").read_text())
    warning = report["warnings"][0]
    assert warning["split"] == "train" and warning["step"] == "quality rules" and warning["share"] > 0.3
    assert "relax data.cleaning.gopher_" in caplog.text and "cleaning=books|docs|dialogue|web" in caplog.text
    data.cleaning.max_drop_fraction = 0.3
    with pytest.raises(UserError, match=r"max_drop_fraction=0\.3"):
        clean(data, tmp_path / "work2")
    data.cleaning.max_drop_fraction = 0.99
    clean(data, tmp_path / "work3")  # under the limit: a warning only
