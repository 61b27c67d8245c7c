import datasets
import pytest

from lightning_llm.data.config import SplitConfig
from lightning_llm.data.splits import complete_splits
from lightning_llm.errors import UserError


def _docs(n, groups=None):
    cols = {"text": [f"doc {i}" for i in range(n)]}
    if groups:
        cols["group"] = groups
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(cols)})


def test_split_is_by_document_deterministic_and_disjoint():
    a = complete_splits(_docs(100), SplitConfig(validation=0.1, test=0.05, seed=7))
    b = complete_splits(_docs(100), SplitConfig(validation=0.1, test=0.05, seed=7))
    c = complete_splits(_docs(100), SplitConfig(validation=0.1, test=0.05, seed=8))
    assert {s: len(a[s]) for s in a} == {"train": 85, "validation": 10, "test": 5}
    assert all(a[s]["text"] == b[s]["text"] for s in a)
    assert a["validation"]["text"] != c["validation"]["text"]
    texts = [t for s in a for t in a[s]["text"]]
    assert len(texts) == len(set(texts)) == 100


def test_documents_of_one_group_stay_in_one_split():
    groups = [f"play{i // 2}" for i in range(40)]  # two editions per play
    dd = complete_splits(_docs(40, groups), SplitConfig(validation=0.1, test=0.1, seed=0))
    seen = {s: set(dd[s]["group"]) for s in dd}
    assert not (seen["train"] & seen["validation"]) and not (seen["train"] & seen["test"])
    assert len(dd["validation"]) % 2 == 0 and len(dd["validation"]) >= 4


def test_given_splits_are_kept_and_too_few_documents_is_a_clear_error():
    dd = _docs(10)
    dd["validation"] = datasets.Dataset.from_dict({"text": ["v"]})
    out = complete_splits(dd, SplitConfig(test=0.1))
    assert out["validation"]["text"] == ["v"] and len(out["test"]) == 1 and len(out["train"]) == 9
    with pytest.raises(UserError, match="at least 3 groups of documents"):
        complete_splits(_docs(2, ["a", "a"]), SplitConfig())


def test_a_single_big_document_is_cut_into_contiguous_pieces():
    text = "".join(f"line {i}\n" for i in range(1000))
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": [text]})})
    out = complete_splits(dd, SplitConfig(validation=0.1, test=0.1, seed=0))
    assert len(out["validation"]) == len(out["test"]) == 10 and 75 <= len(out["train"]) <= 80
    lines = [ln for s in out for t in out[s]["text"] for ln in t.splitlines()]
    assert sorted(lines) == sorted(text.splitlines())  # nothing lost, nothing duplicated
