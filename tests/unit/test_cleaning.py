import datasets

from lightning_llm.data.cleaning import clean, normalize
from lightning_llm.data.config import CleaningConfig


def test_normalize_repairs_unicode_and_whitespace():
    cfg = CleaningConfig(max_blank_lines=1)
    text = "Cafe\u0301  is   fine \r\n\n\n\n\nsecond\t\tline   \n"
    assert normalize(text, cfg) == "Caf\u00e9 is fine\n\nsecond line"
    assert normalize("donâ€™t", cfg) == "don't"  # mojibake repaired by ftfy


def test_normalize_without_ftfy_still_normalizes_nfc():
    assert normalize("e\u0301", CleaningConfig(fix_unicode=False)) == "\u00e9"


def test_clean_drops_empty_and_short_documents_and_counts_them():
    ds = datasets.Dataset.from_dict({"text": ["a real document.", "   \n\n ", "", "tiny", None]})
    kept, report = clean(ds, CleaningConfig(min_chars=5))
    assert kept["text"] == ["a real document."]
    assert report["documents_in"] == 5 and report["documents_out"] == 1
    assert report["dropped"] == {"empty": 3, "too_short": 1}
    assert report["documents_in"] == report["documents_out"] + sum(report["dropped"].values())
    assert report["bytes_out"] == len(b"a real document.")
