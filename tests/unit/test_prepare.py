import json

import numpy as np
import pytest

from lightning_llm.data import PretrainDataModule
from lightning_llm.data.config import CleaningConfig, DataConfig, TokenizerConfig
from lightning_llm.data.pipeline import prepare, prepared_dir
from lightning_llm.errors import UserError


def test_prepare_writes_shards_manifest_and_tokenizer(data_cfg, tok_cfg, tmp_path):
    folder = prepare(_cfg(data_cfg), TokenizerConfig(**tok_cfg), tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dtype"] == "uint16" and manifest["seq_len"] == 32
    assert manifest["tokenizer"]["vocab_size"] == 300
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    assert sum(s["documents"] for s in manifest["splits"].values()) == 24
    assert (folder / "cleaning_report.json").exists() and (folder / "tokenizer" / "tokenizer.json").exists()
    assert not list(tmp_path.glob(".*tmp*")) and not list(folder.rglob(".*tmp*"))  # no temp leftovers
    train = manifest["splits"]["train"]
    rows = np.concatenate([np.load(folder / "shards" / s["file"]) for s in train["shards"]])
    assert rows.dtype == np.uint16 and rows.shape == (train["sequences"], 33)
    assert (rows[1:, 0] == rows[:-1, -1]).all()  # consecutive rows overlap by one token: none skipped
    assert train["tokens"] == train["sequences"] * 32 + 1 + train["tokens_dropped_tail"]
    eos = manifest["tokenizer"]["eos_token_id"]
    assert (rows == eos).sum() >= train["documents"] - 1  # EOS between documents


def test_prepare_is_keyed_by_config_and_reused(data_cfg, tok_cfg, tmp_path, monkeypatch):
    first = prepare(_cfg(data_cfg), TokenizerConfig(**tok_cfg), tmp_path)
    stamp = (first / "manifest.json").stat().st_mtime_ns
    import lightning_llm.data.pipeline as prep

    monkeypatch.setattr(prep, "source_readers", lambda *a: pytest.fail("re-prepared instead of reusing"))
    assert prepare(_cfg(data_cfg), TokenizerConfig(**tok_cfg), tmp_path) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    other = prepared_dir(_cfg({**data_cfg, "seq_len": 16}), TokenizerConfig(**tok_cfg), tmp_path)
    assert other != first and other.parent == first.parent
    assert prepared_dir(_cfg({**data_cfg, "batch_size": 64}), TokenizerConfig(**tok_cfg), tmp_path) == first


def test_empty_corpus_and_too_little_text_are_clear_errors(tmp_path, tok_cfg):
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("  \n\n")
    with pytest.raises(UserError, match=r"train split .* is empty after cleaning .*'empty': 3"):
        prepare(DataConfig(data_files={"train": str(tmp_path / "*.txt")}), TokenizerConfig(**tok_cfg), tmp_path / "o")
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"Short text {i}. With five. Short sentences. In it. The end.")
    with pytest.raises(UserError, match=r"fewer than data.seq_len \+ 1"):
        cleaning = CleaningConfig(gopher_quality=None, gopher_repetition=None, near_dedup=None)
        prepare(DataConfig(data_files={"train": str(tmp_path / "*.txt")}, seq_len=64, cleaning=cleaning),
                TokenizerConfig(**tok_cfg), tmp_path / "o")


def test_datamodule_checks_the_tokenizer_against_the_shards(data_cfg, tok_cfg, tmp_path):
    dm = PretrainDataModule(data_cfg, tok_cfg, tmp_path)
    dm.prepare_data()
    other = PretrainDataModule(data_cfg, {"vocab_size": 280}, tmp_path)
    other.prepare_data()
    (dm.prepared_dir / "tokenizer").rename(tmp_path / "mine")
    (other.prepared_dir / "tokenizer").rename(dm.prepared_dir / "tokenizer")  # swap in a foreign tokenizer
    with pytest.raises(UserError, match=r"tokenizer does not match the shards .*vocab 280.*vocab 300"):
        dm.setup("fit")


def test_datamodule_batches_carry_labels_and_label_bytes(data_cfg, tok_cfg, tmp_path):
    dm = PretrainDataModule(data_cfg, tok_cfg, tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == batch["labels"].shape == batch["label_bytes"].shape == (4, 32)
    assert (batch["input_ids"][:, 1:] == batch["labels"][:, :-1]).all()
    text = dm.tokenizer.decode(batch["labels"][0])
    assert int(batch["label_bytes"][0].sum()) == len(text.replace("<|endoftext|>", "").encode())


def _cfg(d):
    from lightning_llm.config import from_dict

    return from_dict(DataConfig, d, "data")


def test_a_killed_preparation_resumes_without_redoing_finished_cleaning_shards(data_cfg, tok_cfg, tmp_path,
                                                                               monkeypatch):
    import lightning_llm.data.pipeline as prep

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies right after the cleaning stages

    cfg = _cfg({**data_cfg, "cleaning": {"tasks": 2}})
    with monkeypatch.context() as m:
        m.setattr(prep, "complete_splits", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare(cfg, TokenizerConfig(**tok_cfg), tmp_path)
    partial = prepared_dir(cfg, TokenizerConfig(**tok_cfg), tmp_path).with_name(
        prepared_dir(cfg, TokenizerConfig(**tok_cfg), tmp_path).name + ".partial")
    clean = sorted((partial / "cleaning" / "clean" / "train").glob("*.jsonl"))
    assert len(clean) == 2 and not (partial / "manifest.json").exists()
    task_log = partial / "cleaning" / "logs" / "clean" / "train" / "logs" / "task_00000.log"
    stamp = task_log.stat().st_mtime_ns
    # a half-written shard of an unfinished task: its completion marker is missing, so it is redone
    clean[1].write_text(clean[1].read_text()[:100])
    (partial / "cleaning" / "logs" / "clean" / "train" / "completions" / "00001").unlink()

    folder = prepare(cfg, TokenizerConfig(**tok_cfg), tmp_path)
    assert (folder / "manifest.json").exists() and not partial.exists()
    done = folder / "cleaning" / "logs" / "clean" / "train" / "logs" / "task_00000.log"
    assert done.stat().st_mtime_ns == stamp  # the finished task did not run again
    report = json.loads((folder / "cleaning_report.json").read_text())
    assert report["records_in"] == 24 == report["documents_out"] + sum(report["dropped"].values())
    corpus = [json.loads(line) for split in ("train", "validation", "test")
              for line in (folder / "corpus" / f"{split}.jsonl").open()]
    assert len(corpus) == report["documents_out"]  # the redone shard is whole again, nothing lost


def test_prepared_data_is_keyed_by_the_tokenizer_s_content_not_its_path(data_cfg, tmp_path):
    from lightning_llm.data.tokenizer import train_bpe

    folder = tmp_path / "export"
    train_bpe(["the king and the queen"] * 50, 280).save_pretrained(folder)
    before = prepared_dir(_cfg(data_cfg), TokenizerConfig(path=str(folder)), tmp_path)
    train_bpe(["to be or not to be"] * 50, 280).save_pretrained(folder)  # the same path, retrained
    assert prepared_dir(_cfg(data_cfg), TokenizerConfig(path=str(folder)), tmp_path) != before


def test_a_damaged_shard_is_named_with_the_command_that_rebuilds_it(data_cfg, tok_cfg, tmp_path):
    dm = PretrainDataModule(data_cfg, tok_cfg, tmp_path)
    dm.prepare_data()
    folder = dm.prepared_dir
    shard = sorted((folder / "shards").glob("train-*.npy"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # what an interrupted copy leaves
    with pytest.raises(UserError, match=rf"prepared data {folder} is damaged: shards/{shard.name} is [\d,]+ bytes, "
                                        rf"not the [\d,]+ it was written with .*rm -rf {folder}, then run the same"):
        PretrainDataModule(data_cfg, tok_cfg, tmp_path).setup("fit")
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF  # same size, other content: only the checksum sees it
    shard.write_bytes(bytes(flipped))
    PretrainDataModule(data_cfg, tok_cfg, tmp_path).setup("fit")  # sizes only, by default
    with pytest.raises(UserError, match=r"does not match its sha256 in the manifest"):
        PretrainDataModule({**data_cfg, "verify": True}, tok_cfg, tmp_path).setup("fit")
    shard.unlink()
    with pytest.raises(UserError, match=rf"shards/{shard.name} is missing"):
        PretrainDataModule(data_cfg, tok_cfg, tmp_path).setup("fit")


def test_a_small_folder_is_cleaned_as_one_task_and_a_large_one_as_one_task_per_file(tmp_path):
    from lightning_llm.data.pipeline import _ONE_TASK_BYTES, _tasks
    from lightning_llm.data.sources.local import local_reader

    small = [tmp_path / f"s{i}.txt" for i in range(5)]
    for p in small:
        p.write_text("a few words\n")
    reader = local_reader([str(p) for p in small], "train", "text", tmp_path / "s")
    assert reader.num_files == 5 and reader.num_bytes == 5 * len("a few words\n")
    assert _tasks([reader]) == 1
    big = [tmp_path / f"b{i}.txt" for i in range(3)]
    for p in big:
        p.write_bytes(b"x" * (_ONE_TASK_BYTES // 2))
    assert _tasks([local_reader([str(p) for p in big], "train", "text", tmp_path / "b")]) == 3
