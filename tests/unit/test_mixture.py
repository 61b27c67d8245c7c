"""Data mixtures (`data.mixture`): the draw by weight, its resume, per-source preparation, cleaning and metrics."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from lightning_llm.data import PretrainDataModule, prepare
from lightning_llm.data.datamodule import split_dataset
from lightning_llm.data.sampling import MixtureBatchSampler
from lightning_llm.errors import UserError
from lightning_llm.training import CausalLMModule
from lightning_llm.training.callbacks import MixtureMetrics
from tests.conftest import TINY_MODEL, make_document
from tests.unit.test_chat_template import SMOLLM2_TOKENIZER


def _batches(sampler: MixtureBatchSampler, n: int) -> list[list[int]]:
    """The first n batches, across epochs, as Lightning takes them (a new iteration per epoch)."""
    out: list[list[int]] = []
    while len(out) < n:
        for batch in sampler:
            out.append(batch)
            if len(out) == n:
                break
    return out


ROWS, WEIGHTS = [900, 40, 260], [0.5, 0.2, 0.3]  # the small source is upsampled, the large one not used up


def test_over_2000_steps_each_share_is_within_1_percent_of_its_weight():
    for seed in (0, 1, 1234):
        batches = _batches(MixtureBatchSampler(ROWS, WEIGHTS, 16, seed=seed), 2000)
        rows = np.asarray(batches).ravel()
        source = np.searchsorted(np.cumsum(ROWS), rows, side="right")
        shares = np.bincount(source, minlength=3) / len(rows)
        assert np.all(np.abs(shares - WEIGHTS) < 0.01 * np.asarray(WEIGHTS)), shares  # 1% of each weight
        assert len(set(rows[source == 1])) == ROWS[1]  # the 40-row source: every row, repeated in new orders


def test_every_prefix_of_the_draw_keeps_the_shares_and_counts_match_the_rows():
    sampler = MixtureBatchSampler(ROWS, WEIGHTS, 16, seed=3)
    for n in (16, 160, 1600, 16000):
        counts = sampler.counts(0, n)
        assert counts.sum() == n and np.all(np.abs(counts - n * np.asarray(WEIGHTS)) <= 4), counts
    assert np.array_equal(sampler.counts(0, 5000) + sampler.counts(5000, 9000), sampler.counts(0, 9000))


def test_a_resume_continues_the_same_draw_and_processes_split_each_global_batch():
    whole = _batches(MixtureBatchSampler(ROWS, WEIGHTS, 16, seed=7), 300)
    resumed = _batches(MixtureBatchSampler(ROWS, WEIGHTS, 16, seed=7, start_batch=177), 123)
    assert resumed == whole[177:]
    ranks = [_batches(MixtureBatchSampler(ROWS, WEIGHTS, 8, rank=r, world_size=2, seed=7), 300) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == whole  # disjoint halves of the same global batches
    other = _batches(MixtureBatchSampler(ROWS, WEIGHTS, 16, seed=8), 300)
    assert other != whole


def _source(folder: Path, name: str, seed: int, documents: int = 12) -> str:
    rng = random.Random(seed)
    (folder / name).mkdir(parents=True)
    for i in range(documents):
        (folder / name / f"{i:02d}.txt").write_text(make_document(rng, 40))
    return str(folder / name / "*.txt")


@pytest.fixture
def mixture(tmp_path: Path) -> dict:
    return {"a": {"weight": 3, "data_files": {"train": _source(tmp_path, "a", 1)}, "cleaning": "books"},
            "b": {"weight": 1, "data_files": {"train": _source(tmp_path, "b", 2)},
                  "cleaning": {"profile": "dialogue", "near_dedup": None}}}


def _data(mixture: dict, **extra) -> dict:
    return {"mixture": mixture, "seq_len": 32, "batch_size": 4, "split": {"validation": 0.15, "test": 0.15},
            **extra}


def test_each_source_is_prepared_under_its_own_cleaning_with_one_tokenizer(mixture, tmp_path):
    out = prepare(PretrainDataModule(_data(mixture)).data, PretrainDataModule(tokenizer={"vocab_size": 300})
                  .tokenizer_cfg, tmp_path / "prepared")
    manifest = json.loads((out / "manifest.json").read_text())
    assert out.name.startswith("mixture-") and list(manifest["mixture"]) == ["a", "b"]
    report = json.loads((out / "cleaning_report.json").read_text())
    assert report["sources"]["a"]["steps"] and {s["step"].split(":")[0] for s in report["steps"]} == {"a", "b"}
    profiles = {n: {k for k in r["steps"][-1] if k.startswith("profile_")} | {
        k for s in r["steps"] for k in s if k.startswith("profile_")} for n, r in report["sources"].items()}
    assert "profile_books" in profiles["a"] and "profile_dialogue" in profiles["b"]
    steps_b = [s["step"] for s in report["sources"]["b"]["steps"]]
    assert not any("minhash" in s or "near" in s for s in steps_b) and any("near" in s or "minhash" in s for s in
                                                                            (x["step"] for x in report["sources"]["a"]
                                                                             ["steps"]))
    for split in ("train", "validation", "test"):
        per_source = [manifest["mixture"][n]["splits"][split]["sequences"] for n in ("a", "b")]
        assert all(per_source) and sum(per_source) == manifest["splits"][split]["sequences"]
        assert {s["source"] for s in manifest["splits"][split]["shards"]} == {"a", "b"}
    test = split_dataset(out, "test")
    sources = [int(test[i]["source"]) for i in range(len(test))]
    assert sources == sorted(sources) and set(sources) == {0, 1}
    # a weight only changes the draw: the same folder
    mixture["a"]["weight"] = 1
    assert PretrainDataModule(_data(mixture), {"vocab_size": 300}, tmp_path / "prepared").prepared_dir == out


def test_bad_weights_names_and_sources_are_one_line_naming_the_source(mixture, tmp_path):
    for weight in (0, -1, float("nan"), "x"):
        bad = {**mixture, "b": {**mixture["b"], "weight": weight}}
        with pytest.raises(UserError, match=r"data\.mixture\.b\.weight=.*above 0"):
            _ = PretrainDataModule(_data(bad), {"vocab_size": 300}, tmp_path).prepared_dir
    with pytest.raises(UserError, match=r"data\.mixture\.c has no documents"):
        _ = PretrainDataModule(_data({**mixture, "c": {"weight": 1}}), {}, tmp_path).prepared_dir
    with pytest.raises(UserError, match=r"unknown key\(s\) data\.mixture\.b\.wieght"):
        _ = PretrainDataModule(_data({**mixture, "b": {"wieght": 1, "corpus": "x"}}), {}, tmp_path).prepared_dir
    with pytest.raises(UserError, match=r"data\.mixture\.a/b: a source name"):
        _ = PretrainDataModule(_data({"a/b": mixture["a"]}), {}, tmp_path).prepared_dir
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("\n".join(["Buy now! Buy now!"] * 50))
    junk = {**mixture, "junk": {"weight": 1, "data_files": {"train": str(tmp_path / "junk" / "*.txt")},
                                "cleaning": "web"}}
    dm = PretrainDataModule(_data(junk), {"vocab_size": 300}, tmp_path / "prepared")
    with pytest.raises(UserError, match=r"^data\.mixture\.junk: the train split of .* is empty after cleaning"):
        dm.prepare_data()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_training_logs_each_source_tokens_and_validation_bpb(mixture, tmp_path, precision):
    dm = PretrainDataModule(_data(mixture), {"vocab_size": 300}, tmp_path / "prepared", seed=5)
    dm.prepare_data()
    dm.setup("fit")
    module = CausalLMModule(dm.vocab_size, config={**TINY_MODEL, "max_position_embeddings": 32},
                            optim={"warmup_steps": 1})
    logged: dict[str, float] = {}

    class Keep(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    trainer = L.Trainer(max_steps=6, log_every_n_steps=2, val_check_interval=3, limit_val_batches=None,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        callbacks=[MixtureMetrics(), Keep()], use_distributed_sampler=False, accelerator="cpu",
                        precision=precision)
    trainer.fit(module, datamodule=dm)
    rows = dm.train_sampler().counts(0, 6 * 4)
    assert logged["data/a/tokens"] == rows[0] * 32 and logged["data/b/tokens"] == rows[1] * 32
    assert abs(logged["data/a/share"] - 0.75) < 0.1
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    # the mixture's bpb is the byte-weighted mean of its sources'
    manual = {}
    for index, name in enumerate(dm.source_names):
        nats = bytes_ = 0.0
        for i in range(len(dm.datasets["validation"])):
            row = dm.datasets["validation"][i]
            if int(row["source"]) == index:
                with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16-mixed"):
                    logits = module(row["input_ids"][None])
                n = torch.nn.functional.cross_entropy(logits[0].float(), row["labels"], reduction="none").double()
                text = row["label_bytes"] > 0
                nats += float(n[text].sum())
                bytes_ += float(row["label_bytes"].sum())
        manual[name] = nats / bytes_ / np.log(2)
        # bf16: the same rows one at a time here, batched there (other kernels, other roundings)
        assert abs(val[f"val/{name}/bpb"] - manual[name]) < (1e-4 if precision == "32-true" else 1e-2 * manual[name])
    assert min(manual.values()) <= val["val/bpb"] <= max(manual.values())


def test_evaluation_interleaves_sources_so_a_limited_evaluation_sees_each():
    from lightning_llm.data.datamodule import interleaved

    order = interleaved([300, 100, 40], [0, 0, 1])  # source 0: 400 rows, source 1: 40
    source = np.asarray([0] * 400 + [1] * 40)[order]
    assert sorted(order) == list(range(440))
    for n in (11, 44, 100, 220):
        assert abs((source[:n] == 1).mean() - 40 / 440) <= 1 / n + 1e-9


def _losses_and_state(dm: PretrainDataModule, tmp_path: Path, steps: int, ckpt: str | None = None,
                      every: int | None = None, precision: str = "32-true") -> list[float]:
    L.seed_everything(0)
    module = CausalLMModule(dm.vocab_size, config={**TINY_MODEL, "max_position_embeddings": 32},
                            optim={"warmup_steps": 1})
    losses: list[float] = []

    class Keep(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    callbacks = [MixtureMetrics(), Keep()]
    if every:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=every,
                                                             save_top_k=-1))
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=callbacks, use_distributed_sampler=False, accelerator="cpu",
                        enable_checkpointing=bool(every), enable_model_summary=False, precision=precision)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    return losses


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_resumed_mixture_run_draws_the_same_rows_and_losses(mixture, tmp_path, precision):
    def datamodule():
        dm = PretrainDataModule(_data(mixture), {"vocab_size": 300}, tmp_path / "prepared", seed=5)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    whole = _losses_and_state(datamodule(), tmp_path, 8, every=4, precision=precision)
    (ckpt,) = [p for p in (tmp_path / "ckpt").glob("*.ckpt") if "step=4" in p.name]
    resumed = _losses_and_state(datamodule(), tmp_path, 8, ckpt=str(ckpt), precision=precision)
    assert resumed == whole[4:]


def test_a_streamed_mixture_with_dataloader_workers_is_one_line_naming_the_key(mixture, tmp_path):
    dm = PretrainDataModule(_data(mixture, num_workers=1), {"vocab_size": 300}, "s3://lake/mix", seed=5)
    with pytest.raises(UserError, match=r"^data.num_workers=1: a mixture streamed .* set data.num_workers=0"):
        dm.prepare_data()


def _prepared(spec: dict, tmp_path: Path, tokenizer: dict | None = None) -> Path:
    """One source prepared alone (as `llm-prepare` would), under the mixture tests' seq_len and split."""
    dm = PretrainDataModule({k: v for k, v in _data({}).items() if k != "mixture"} | spec,
                            tokenizer or {"vocab_size": 300}, tmp_path / "alone")
    dm.prepare_data()
    return dm.prepared_dir


def _rows(folder: Path, split: str, source: int | None = None) -> list[list[int]]:
    ds = split_dataset(folder, split)
    return [ds[i]["input_ids"].tolist() + ds[i]["labels"][-1:].tolist() for i in range(len(ds))
            if source is None or int(ds[i]["source"]) == source]


def test_a_prepared_folder_is_a_source_taken_as_it_is_with_its_tokenizer(mixture, tmp_path):
    a = _prepared({"data_files": mixture["a"]["data_files"], "cleaning": {"profile": "books"}}, tmp_path)
    # b: a dataset folder through `path` (the code path of a hub name: datasets + datatrove's reader)
    rng = random.Random(2)
    (tmp_path / "hub_b").mkdir()
    (tmp_path / "hub_b" / "train.jsonl").write_text("".join(json.dumps({"text": make_document(rng, 40)}) + "\n"
                                                            for _ in range(12)))
    b_spec = {"path": str(tmp_path / "hub_b"), "cleaning": mixture["b"]["cleaning"]}
    # b alone, under a's tokenizer: what the mixture must make of b
    b = _prepared(b_spec, tmp_path, {"path": str(a / "tokenizer")})
    mix = {"a": {"weight": 3, "prepared": str(a)}, "b": {"weight": 1, **b_spec}}
    dm = PretrainDataModule(_data(mix), {"vocab_size": 999}, tmp_path / "prepared", seed=5)  # a's tokenizer wins
    dm.prepare_data()
    dm.setup("fit")
    a_manifest = json.loads((a / "manifest.json").read_text())
    assert dm.manifest["tokenizer"] == a_manifest["tokenizer"] and dm.source_names == ["a", "b"]
    assert dm.manifest["mixture"]["a"]["source"] == f"prepared {a}"
    for split in ("train", "validation", "test"):
        assert _rows(dm.prepared_dir, split, 0) == _rows(a, split)  # a's rows, as they are
        assert _rows(dm.prepared_dir, split, 1) == _rows(b, split)  # b cleaned and tokenized with a's tokenizer
        assert dm.manifest["mixture"]["a"]["splits"][split]["sequences"] == a_manifest["splits"][split]["sequences"]
    shard = dm.manifest["splits"]["train"]["shards"][0]
    assert shard["source"] == "a" and (dm.prepared_dir / "shards" / shard["file"]).stat().st_nlink == 2  # linked
    report = json.loads((dm.prepared_dir / "cleaning_report.json").read_text())
    assert list(report["sources"]) == ["a", "b"] and report["sources"]["a"]["records_in"] == 12
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["source"].tolist()) <= {0, 1} and batch["input_ids"].shape == (4, 32)
    # the folder is keyed by the prepared source's manifest: another weight reuses it
    again = PretrainDataModule(_data({**mix, "a": {"weight": 1, "prepared": str(a)}}), {"vocab_size": 999},
                               tmp_path / "prepared")
    assert again.prepared_dir == dm.prepared_dir

    # each bad prepared source: one line naming its key (in the same test: it reuses the folders made above)
    def fails(mix: dict, match: str, tokenizer: dict | None = None, **extra) -> None:
        with pytest.raises(UserError, match=match):
            PretrainDataModule(_data(mix, **extra), tokenizer or {}, tmp_path / "prepared").prepare_data()

    fails({"a": {"prepared": str(tmp_path / "nothing")}}, r"^data\.mixture\.a\.prepared=.*nothing has no manifest")
    fails({"a": {"prepared": str(a), "corpus": "shakespeare"}},
          r"^data\.mixture\.a: a prepared source is taken as it is .* drop data\.mixture\.a\.corpus")
    fails({"a": {"prepared": str(a), "cleaning": "web"}}, r"drop data\.mixture\.a\.cleaning")
    fails({"a": {"prepared": str(a)}}, r"^data\.mixture\.a\.prepared=.* holds rows of 32 tokens, data\.seq_len=16: "
          r"set data\.seq_len=32", seq_len=16)
    other = tmp_path / "other"  # a's rows as another tokenizer's (its manifest says so)
    shutil.copytree(a, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tokenizer"]["hash"] = "0" * len(manifest["tokenizer"]["hash"])
    (other / "manifest.json").write_text(json.dumps(manifest))
    fails({"a": {"prepared": str(a)}, "o": {"prepared": str(other)}},
          r"^data\.mixture\.a and data\.mixture\.o were prepared with different tokenizers")
    fails({"o": {"prepared": str(other)}}, r"^the tokenizer of data\.mixture\.o\.prepared=.* does not match its rows")
    fails({"a": {"prepared": str(a)}, "c": mixture["b"]}, r"^tokenizer\.path=.* is not the tokenizer "
          r"data\.mixture\.a\.prepared=.* was made with: drop tokenizer\.path", {"path": str(SMOLLM2_TOKENIZER)})
    fails({"m": {"prepared": str(dm.prepared_dir)}}, r"^data\.mixture\.m\.prepared=.* is itself a mixture \(a, b\)")


def test_a_prepared_folder_on_another_filesystem_is_copied(mixture, tmp_path, monkeypatch):
    """Where a hard link cannot be made (another filesystem), the shards are copied, byte for byte."""
    from lightning_llm.data import prepared_source

    a = _prepared({"data_files": mixture["a"]["data_files"]}, tmp_path)
    source = prepared_source.open_prepared(str(a), "data.mixture.a")

    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(prepared_source.os, "link", cross_device)
    (tmp_path / "shards").mkdir()
    shards = prepared_source.copy_rows(source, "a", "train", tmp_path / "shards", 65536)
    assert [s["file"] for s in shards] == [f"a-{s['file']}" for s in source.manifest["splits"]["train"]["shards"]]
    for s in shards:
        copy = tmp_path / "shards" / s["file"]
        assert copy.stat().st_nlink == 1 and s["source"] == "a"
        assert copy.read_bytes() == (a / "shards" / s["file"].removeprefix("a-")).read_bytes()
