import json

import pytest

from lightning_llm.data.config import DataConfig, SplitConfig
from lightning_llm.data.corpora import play_of
from lightning_llm.data.sources import fingerprint, load_documents
from lightning_llm.errors import UserError


def test_txt_files_are_one_document_each(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"line one of {i}\nline two\n")
    dd = load_documents(DataConfig(data_files={"train": str(tmp_path / "*.txt")}))
    assert len(dd["train"]) == 3 and dd["train"][0]["text"].count("\n") >= 1


def test_jsonl_with_text_column_per_split(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps({"body": f"{split} {i}", "n": i})
                                                           for i in range(4)))
    cfg = DataConfig(data_files={"train": str(tmp_path / "train.jsonl"), "test": [str(tmp_path / "test.jsonl")]},
                     text_column="body")
    dd = load_documents(cfg)
    assert sorted(dd) == ["test", "train"] and dd["test"]["text"][0] == "test 0"
    assert dd["train"].column_names == ["text"]


def test_missing_file_missing_column_and_bad_split_name_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match=r"data.data_files.train: no file matches .*nope\*.txt"):
        load_documents(DataConfig(data_files={"train": str(tmp_path / "nope*.txt")}))
    (tmp_path / "a.jsonl").write_text('{"content": "x"}\n')
    with pytest.raises(UserError, match=r"no column 'text' .*content.*data.text_column"):
        load_documents(DataConfig(data_files={"train": str(tmp_path / "a.jsonl")}))
    with pytest.raises(UserError, match="unknown split"):
        load_documents(DataConfig(data_files={"dev": str(tmp_path / "a.jsonl")}))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(UserError, match=r"could not read data.data_files.train .*bad.jsonl"):
        load_documents(DataConfig(data_files={"train": str(tmp_path / "bad.jsonl")}))


def test_hub_path_loads_a_local_dataset_folder_with_its_splits(tmp_path):
    # The same `datasets.load_dataset(path, name)` call a hub name takes, on a folder made here.
    (tmp_path / "ds").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "ds" / f"{split}.jsonl").write_text("\n".join(json.dumps({"text": f"{split} {i}", "src": "x"})
                                                                    for i in range(5)))
    dd = load_documents(DataConfig(path=str(tmp_path / "ds"), split=SplitConfig(group_by="src")))
    assert sorted(dd) == ["train", "validation"] and dd["train"].column_names == ["text", "group"]


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("one")
    cfg = DataConfig(data_files={"train": str(f)})
    before = fingerprint(cfg)
    f.write_text("one two")
    assert fingerprint(cfg) != before


def test_both_editions_of_a_play_share_a_group():
    assert play_of("hamlet_gut") == play_of("hamlet_gut_f") == "hamlet"
    assert play_of("twelfe-night_gut_f") == play_of("twelfth_night_gut")
    assert play_of("macbeth_gut") != play_of("hamlet_gut")
