"""A local or shared folder as the object store (`paths.data_dir=file:///path`): the same LitData datasets, manifest
and tokenizer an s3:// URL gets, read in place; no server needed, so these run in the fast suite."""

from __future__ import annotations

import json

import pytest

from lightning_llm.data import PretrainDataModule
from lightning_llm.data.datamodule import split_dataset
from lightning_llm.errors import UserError
from lightning_llm.paths import cache_dir
from tests.unit.test_mixture import _data, _source

pytest.importorskip("litdata", reason="pip install 'lightning_llm[stream]'")


def _rows(batches) -> list[tuple]:
    return [tuple(r) for b in batches for r in b["input_ids"].tolist()]


def test_a_file_url_folder_holds_the_litdata_datasets_streamed_as_the_memmap_rows(tmp_path):
    data = {k: v for k, v in _data({}).items() if k != "mixture"} | {"data_files": {"train": _source(tmp_path, "a", 1)}}
    url = f"file://{tmp_path}/lake"
    streamed = PretrainDataModule(data, {"vocab_size": 300}, url, seed=5)
    streamed.prepare_data()
    streamed.setup("fit")
    name = streamed.prepared_dir.name
    local = cache_dir() / "prepared" / name  # the memmap folder it was built in before it was published
    folder = tmp_path / "lake" / name
    assert streamed.stream_url == f"{url}/{name}"
    for split in ("train", "validation", "test"):
        assert (folder / split / "index.json").is_file()
    assert json.loads((folder / "manifest.json").read_text()) == json.loads((local / "manifest.json").read_text())
    assert not any(p.name.startswith(".") for p in folder.rglob("*"))  # no temp file of an atomic write is left

    memmap = {}
    for split in ("train", "validation", "test"):
        rows = split_dataset(local, split)
        memmap[split] = sorted(tuple(rows[i]["input_ids"].tolist()) for i in range(len(rows)))
    for split in ("validation", "test"):  # every row once
        assert sorted(_rows(streamed.eval_dataloader(split))) == memmap[split]
    epoch = _rows(streamed.train_dataloader())  # shuffled by LitData, full batches only
    assert len(epoch) == len(memmap["train"]) // 4 * 4 and len(set(epoch)) == len(epoch)
    assert set(epoch) <= set(memmap["train"]) and epoch != sorted(epoch)
    # reused: a second run finds the manifest and publishes nothing again
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    again = PretrainDataModule(data, {"vocab_size": 300}, url, seed=5)
    again.prepare_data()
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp


def test_a_file_url_that_cannot_be_a_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    dm = PretrainDataModule({"corpus": "shakespeare"}, {}, f"file://{tmp_path}/file/lake")
    with pytest.raises(UserError, match=r"^file://.*/file/lake/.*: the folder cannot be made .*fix paths\.data_dir"):
        dm.prepare_data()
