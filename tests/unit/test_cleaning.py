"""Each cleaning step with documents it must keep and drop, bad inputs, dedup, and the report's totals."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard
from datatrove.data import Document

from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.run import clean_corpus
from lightning_llm.data.cleaning.steps import (
    GutenbergBoilerplate,
    HtmlToText,
    LanguageFilter,
    LengthFilter,
    MaskPII,
    Normalize,
)
from lightning_llm.data.config import DataConfig
from lightning_llm.data.sources import source_readers
from lightning_llm.errors import UserError
from tests.conftest import make_document

PROSE = ("The committee met on Tuesday to discuss the new library. It was decided that the doors would open at "
         "nine in the morning and close at six in the evening, and that children would be welcome at all hours. ")


def doc(text: str, **metadata) -> Document:
    return Document(text=text, id="d", metadata=metadata)


@pytest.mark.parametrize("extractor", ["resiliparse", "trafilatura"])
def test_html_to_text_keeps_main_text_and_drops_scripts_navigation(extractor):
    html = ("<html><head><style>p{color:red}</style><script>var tracking = 1;</script></head><body>"
            "<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav><article><h1>Opening hours</h1>"
            f"<p>{PROSE}Fish &amp; chips are served.</p><p>{PROSE}</p></article>"
            "<footer>© 2026 Example Ltd</footer></body></html>")
    d = doc(html, format="html")
    assert HtmlToText(extractor).filter(d) is True
    assert "Fish & chips are served." in d.text and "tracking" not in d.text and "color:red" not in d.text
    assert "About" not in d.text and "\n" in d.text.strip()  # navigation gone, paragraphs kept apart
    plain = doc("Not <b>HTML</b> at all, just text.")
    assert HtmlToText(extractor).filter(plain) is True and plain.text == "Not <b>HTML</b> at all, just text."
    assert HtmlToText(extractor).filter(doc("<html><body><script>x()</script></body></html>")) == \
        (False, "html_no_text")


def test_gutenberg_header_and_footer_are_cut():
    text = ("The Project Gutenberg EBook of Hamlet\nLicense text\n*** START OF THIS PROJECT GUTENBERG EBOOK "
            "HAMLET ***\nACT I.\nWho's there?\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nMore license")
    assert GutenbergBoilerplate().format(text).strip() == "ACT I.\nWho's there?"
    assert GutenbergBoilerplate().format("No markers here.") == "No markers here."


def test_normalize_repairs_unicode_invisible_characters_and_whitespace():
    n = Normalize(max_blank_lines=1)
    assert n.format("Cafe\u0301  is   fine \r\n\n\n\n\nsecond\t\tline   \n") == "Caf\u00e9 is fine\n\nsecond line"
    assert n.format("donâ€™t") == "don't"  # mojibake repaired by ftfy
    assert n.format("zero\u200bwidth\x00 and\u202e bidi\ufeff") == "zerowidth and bidi"
    assert Normalize(strip_symbols="[•■►]").format("• item ■ two ►") == "item two"
    assert Normalize(fix_unicode=False).format("e\u0301") == "\u00e9"


def test_length_filter_drops_empty_short_and_huge_documents():
    f = LengthFilter(min_chars=5, max_chars=100)
    assert f.filter(doc("  \n ")) == (False, "empty")
    assert f.filter(doc("tiny")) == (False, "too_short")
    assert f.filter(doc("x" * 101)) == (False, "too_long")
    assert f.filter(doc("just right")) is True


def test_pii_masking_replaces_emails_ips_and_phone_numbers_but_not_dates():
    pii = MaskPII(email="[EMAIL]", ip="[IP]", phone="[PHONE]")
    text = ("Write to jane.doe+news@mail.example.org or call +1 (555) 123-4567 or 020 7946 0958; the server "
            "is 192.168.10.25. Founded 1999, meeting on 2024-05-06 at 10.30, room 12.")
    out = pii.format(text)
    assert "[EMAIL]" in out and out.count("[PHONE]") == 2 and "[IP]" in out
    assert "1999" in out and "2024-05-06" in out and "10.30" in out and "room 12" in out
    assert MaskPII(email=None).format("a@b.com") == "a@b.com"


def test_language_filter_keeps_the_configured_languages():
    f = LanguageFilter(["en"], min_score=0.5)
    assert f.filter(doc(PROSE)) is True
    assert f.filter(doc("Le comité s'est réuni mardi pour discuter de la nouvelle bibliothèque de la ville.")) == \
        (False, "language")


def _run(tmp_path: Path, files: dict[str, list[Path]], **cleaning) -> tuple[dict[str, list[dict]], dict]:
    cfg = DataConfig(data_files={s: [str(f) for f in fs] for s, fs in files.items()},
                     cleaning=CleaningConfig(**cleaning))
    work = tmp_path / "work"
    outputs, report = clean_corpus(source_readers(cfg, work), cfg.cleaning, work / "cleaning", tasks=2)
    kept = {s: [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.open()]
            for s, folder in outputs.items()}
    return kept, report


def test_bad_inputs_are_handled_or_counted_never_lost(tmp_path):
    import random

    rng = random.Random(1)
    good = [make_document(rng) for _ in range(4)]
    # UTF-8 (its "café") with two bytes no encoding explains in it: repaired, not read as another encoding
    (tmp_path / "bytes.txt").write_bytes(good[0].encode() + "\ncafé\n".encode()
                                         + b"bad \xff\xfe bytes and a NUL\x00 here.\n")
    (tmp_path / "empty.txt").write_text("   \n\n")
    (tmp_path / "huge.txt").write_text("word " * 20_000_000)  # 100 MB in one document
    lines = [json.dumps({"text": good[1], "n": 1}), "{not json", json.dumps({"body": "no text field"}),
             json.dumps({"text": 42}), json.dumps({"text": good[2]})]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(tmp_path / "packed.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": good[3]}) + "\n")
    (tmp_path / "packed.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        (json.dumps({"text": make_document(rng)}) + "\n").encode()))
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    kept, report = _run(tmp_path, {"train": files}, c4_lines=None, gopher_quality=None, gopher_repetition=None,
                        near_dedup=None, length={"min_chars": 1, "max_chars": 50_000_000})
    texts = [d["text"] for d in kept["train"]]
    assert len(texts) == 5 and any("bad \ufffd\ufffd bytes and a NUL here." in t for t in texts)
    assert all("\x00" not in t for t in texts)
    assert report["dropped"] == {"malformed_json": 1, "no_text_field": 1, "text_not_a_string": 1, "empty": 1,
                                 "too_long": 1}
    assert report["records_in"] == report["documents_out"] + sum(report["dropped"].values()) == 10
    read = next(s for s in report["steps"] if s["step"] == "read")
    assert read["repaired_invalid_utf8"] == 1


def test_unreadable_or_unsupported_files_are_clear_errors(tmp_path, monkeypatch):
    import builtins

    import lightning_llm.data.sources.local as sources

    locked = tmp_path / "locked.txt"
    locked.write_text("secret")

    def no_permission(path, *args, **kwargs):  # root reads anything: make this one file unreadable
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", no_permission, raising=False)
    with pytest.raises(UserError, match=r"cannot read .*locked.txt \(Permission denied\)"):
        source_readers(DataConfig(data_files={"train": str(locked)}), tmp_path / "w")
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb7")  # binary
    with pytest.raises(UserError, match=r"table.xlsx is not a supported file"):
        source_readers(DataConfig(data_files={"train": str(tmp_path / "table.xlsx")}), tmp_path / "w")


def test_quality_filters_and_dedup_across_files_and_splits_with_reasons(tmp_path):
    import random

    rng = random.Random(2)
    base = [PROSE + make_document(rng, sentences=60) for _ in range(6)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in base[:4]) + "\n")
    near = base[1].replace("Tuesday", "Wednesday", 1)
    spam = "\n".join(["Buy cheap watches now at the best price today!"] * 40)
    cookie = PROSE + "\nThis website uses cookies to improve your experience.\nAccept all cookies."
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in (base[0], near, spam, cookie)) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": base[2]}) + "\n" + json.dumps({"text": base[5]}) + "\n")
    kept, report = _run(tmp_path, {"train": [tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
                                   "test": [tmp_path / "test.jsonl"]}, write_dropped=True)
    assert report["dropped"].get("exact_duplicate") == 2  # base[0] again in b.jsonl, base[2] again in test
    assert report["dropped"].get("near_duplicate") == 1  # base[1] with one word changed
    texts = [d["text"] for split in kept.values() for d in split]
    assert len(texts) == len(set(texts)) and not any("cookies" in t or "watches" in t for t in texts)
    assert report["records_in"] == report["documents_out"] + sum(report["dropped"].values()) == 10
    dropped_files = list((tmp_path / "work" / "cleaning" / "dropped").rglob("*.jsonl"))
    reasons = {json.loads(line).get("filter_reason") for f in dropped_files for line in f.open()}
    assert dropped_files and reasons - {None}


def test_an_executor_from_config_runs_the_stages(tmp_path):
    import random

    rng = random.Random(4)
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": PROSE + make_document(rng, 60)})
                                                for _ in range(3)) + "\n")
    executor = {"_target_": "datatrove.executor.LocalPipelineExecutor", "workers": 1, "start_method": "fork"}
    kept, report = _run(tmp_path, {"train": [tmp_path / "a.jsonl"]}, executor=executor)
    assert len(kept["train"]) == 3 == report["documents_out"]
    assert [s["step"] for s in report["steps"]][:3] == ["read", "max length", "html to text"]


def test_dedup_across_splits_removes_eval_text_from_train_and_never_empties_an_eval_split(tmp_path):
    import random

    rng = random.Random(5)
    docs = [PROSE + make_document(rng, sentences=60) for _ in range(5)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in docs) + "\n")
    (tmp_path / "held_out.jsonl").write_text(json.dumps({"text": docs[3]}) + "\n" + json.dumps({"text": docs[4]}))
    held_out = [tmp_path / "held_out.jsonl"]  # the same file as validation and as test
    kept, report = _run(tmp_path, {"train": [tmp_path / "train.jsonl"], "validation": held_out, "test": held_out},
                        write_dropped=True)
    validation, test = (sorted(d["text"] for d in kept[s]) for s in ("validation", "test"))
    assert len(validation) == 2 and validation == test  # both evaluation splits whole
    train = {d["text"] for d in kept["train"]}
    assert len(train) == 3 and not train & set(validation)  # train decontaminated
    assert report["dropped"] == {"exact_duplicate": 2}
    exact = next(s for s in report["steps"] if s["step"] == "exact_dedup")
    assert exact["eval_duplicates_kept"] == 2
    assert report["records_in"] == report["documents_out"] + sum(report["dropped"].values()) == 9


def test_text_in_latin1_or_cp1252_keeps_its_accents_and_each_encoding_is_counted(tmp_path):
    import random

    rng = random.Random(3)
    body = make_document(rng)
    french = ("Élise répète à François qu'il faut être prêt. Où est le marché? Ce garçon déçu a reçu une lettre "
              "de sa sœur. L'été dernier, nous étions à la forêt près du château; c'était très agréable. ")
    spanish = ("El niño comió una manzana. ¿Dónde está la estación? Mañana iremos al campo con mi tía y su señor. "
               "La canción fue muy bonita; había música y alegría en la plaza. ")
    (tmp_path / "cp1252.txt").write_bytes((french + body).encode("cp1252"))  # œ: not in Latin-1
    (tmp_path / "quotes.jsonl").write_bytes(
        (json.dumps({"text": "Ça coûte 5 € à Noël. " + spanish + body}, ensure_ascii=False) + "\n").encode("cp1252"))
    (tmp_path / "plain.txt").write_text(make_document(rng))
    (tmp_path / "NOTES").write_bytes((spanish + body).encode("latin-1"))  # no suffix: sniffed as text
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    kept, report = _run(tmp_path, {"train": files}, c4_lines=None, gopher_quality=None, gopher_repetition=None,
                        near_dedup=None, length={"min_chars": 1, "max_chars": 1_000_000})
    texts = [d["text"] for d in kept["train"]]
    assert len(texts) == 4 and not any("\ufffd" in t for t in texts)
    assert any(french in t for t in texts) and any(spanish in t for t in texts)
    assert any("Ça coûte 5 € à Noël. " + spanish in t for t in texts)
    read = next(s for s in report["steps"] if s["step"] == "read")
    decoded = {k: v for k, v in read.items() if k.startswith("decoded_")}
    assert sum(decoded.values()) == 3 and read["repaired_invalid_utf8"] == 0, read
