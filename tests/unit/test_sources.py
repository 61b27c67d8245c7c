import json

import pytest

from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.run import clean_corpus
from lightning_llm.data.config import DataConfig
from lightning_llm.data.sources import fingerprint, source_readers
from lightning_llm.data.sources.corpora import play_of
from lightning_llm.errors import UserError

NO_STEPS = CleaningConfig(**{k: None for k in ("html", "gutenberg", "normalize", "length", "c4_lines",
                                               "gopher_quality", "gopher_repetition", "pii", "near_dedup")},
                          exact_dedup=False)


def read(cfg: DataConfig, tmp_path) -> dict[str, list[dict]]:
    """Every document a source yields, per split, with no cleaning step on."""
    outputs, _ = clean_corpus(source_readers(cfg, tmp_path / "w"), NO_STEPS, tmp_path / "w" / "cleaning")
    return {s: [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.open()]
            for s, folder in outputs.items()}


def test_txt_files_are_one_document_each(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"line one of {i}\nline two\n")
    docs = read(DataConfig(data_files={"train": str(tmp_path / "*.txt")}), tmp_path)
    assert sorted(d["text"] for d in docs["train"]) == [f"line one of {i}\nline two\n" for i in range(3)]
    assert all(d["split"] == "train" and d["source"].endswith(".txt") for d in docs["train"])


def test_jsonl_with_text_column_per_split_keeps_other_fields_as_metadata(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps({"body": f"{split} {i}", "n": i})
                                                           for i in range(4)))
    cfg = DataConfig(data_files={"train": str(tmp_path / "train.jsonl"), "test": [str(tmp_path / "test.jsonl")]},
                     text_column="body")
    docs = read(cfg, tmp_path)
    assert sorted(docs) == ["test", "train"] and sorted(d["text"] for d in docs["test"])[0] == "test 0"
    assert {d["n"] for d in docs["train"]} == {0, 1, 2, 3}


def test_missing_file_and_bad_split_name_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match=r"data.data_files.train: no file matches .*nope\*.txt"):
        source_readers(DataConfig(data_files={"train": str(tmp_path / "nope*.txt")}), tmp_path)
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(UserError, match="unknown split"):
        source_readers(DataConfig(data_files={"train": str(tmp_path / "a.jsonl"), "dev": str(tmp_path / "a.jsonl")}),
                       tmp_path)


def test_hub_path_reads_a_local_dataset_folder_with_its_splits(tmp_path):
    # The same `datasets` call a hub name takes (through datatrove's HuggingFaceDatasetReader), on a folder.
    (tmp_path / "ds").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "ds" / f"{split}.jsonl").write_text("\n".join(json.dumps({"text": f"{split} {i}"})
                                                                    for i in range(5)))
    docs = read(DataConfig(path=str(tmp_path / "ds")), tmp_path)
    assert sorted(docs) == ["train", "validation"] and len(docs["train"]) == 5


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


def test_csv_and_tsv_read_their_text_column_and_keep_the_rest_as_metadata(tmp_path):
    (tmp_path / "a.csv").write_text('id,body,lang\n1,"Hello, world.\nA second line, quoted.",en\n2,Plain,fr\n')
    (tmp_path / "b.tsv").write_text("id\tbody\n3\tTabbed text, with a comma\n")
    (tmp_path / "c.csv").write_text("id,other\n4,no text column here\n")
    cfg = DataConfig(data_files={"train": [str(tmp_path / "a.csv"), str(tmp_path / "b.tsv"),
                                           str(tmp_path / "c.csv")]}, text_column="body")
    outputs, report = clean_corpus(source_readers(cfg, tmp_path / "w"), NO_STEPS, tmp_path / "w" / "cleaning")
    docs = [json.loads(line) for f in sorted(outputs["train"].glob("*.jsonl")) for line in f.open()]
    assert sorted(d["text"] for d in docs) == ["Hello, world.\nA second line, quoted.", "Plain",
                                               "Tabbed text, with a comma"]  # no header, no commas of the row
    assert {d["id"]: d.get("lang") for d in docs} == {"1": "en", "2": "fr", "3": None}
    assert report["dropped"] == {"no_body_field": 1}  # the row of c.csv, counted
