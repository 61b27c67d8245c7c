"""Prepared data in object storage, streamed with LitData: against a real S3-compatible server on localhost (moto's
server mode, started here; credentials and endpoint through the usual AWS variables), never a mock of the client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.conftest import llm, tiny
from tests.integration.test_training import _run_until, losses

pytestmark = pytest.mark.slow
pytest.importorskip("litdata", reason="pip install 'lightning_llm[stream]'")
pytest.importorskip("moto", reason="moto[server] runs the local S3 server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free localhost port, its endpoint and test credentials in the environment (so the
    commands run here reach it as a user's would reach theirs), and a bucket `lake`."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="lake")
    yield client
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


def test_prepare_to_s3_then_stream_the_same_rows_as_the_memmap_path(s3, corpus_dir, tmp_path):
    common = [f"data.data_files.train={corpus_dir}/*.txt", "data.seq_len=32", "tokenizer.vocab_size=300"]
    proc = llm("prepare", *common, "paths.data_dir=s3://lake/prepared", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="prepared/")["Contents"]]
    (name,) = {k.split("/")[1] for k in keys}
    for split in ("train", "validation", "test"):
        assert f"prepared/{name}/{split}/index.json" in keys
    assert {f"prepared/{name}/manifest.json", f"prepared/{name}/tokenizer/tokenizer.json"} <= set(keys)
    manifest = json.loads(s3.get_object(Bucket="lake", Key=f"prepared/{name}/manifest.json")["Body"].read())

    from lightning_llm.data import PretrainDataModule

    data = {"data_files": {"train": f"{corpus_dir}/*.txt"}, "seq_len": 32, "batch_size": 4}
    assert manifest["splits"]["train"]["sequences"] > 0 and "tokenizer" in manifest
    streamed = PretrainDataModule(data, {"vocab_size": 300}, "s3://lake/library")  # the library's own defaults
    streamed.prepare_data()
    streamed.setup()
    local = PretrainDataModule(data, {"vocab_size": 300}, tmp_path / "local")
    local.prepare_data()
    local.setup()
    assert streamed.stream_url == f"s3://lake/library/{local.prepared_dir.name}"
    manifest = json.loads((streamed.prepared_dir / "manifest.json").read_text())
    for split in ("validation", "test"):  # every row once, the same rows
        rows = sorted(tuple(r) for b in streamed.eval_dataloader(split) for r in b["input_ids"].tolist())
        want = sorted(tuple(local.datasets[split][i]["input_ids"].tolist()) for i in range(len(local.datasets[split])))
        assert rows == want and len(rows) == manifest["splits"][split]["sequences"]
    batch = next(iter(streamed.train_dataloader()))
    assert batch["input_ids"].shape == (4, 32) and torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
    assert (batch["label_bytes"] > 0).any()


_RANK_ROWS = """
import json, sys
import torch.distributed as dist
from lightning_llm.data import PretrainDataModule
dist.init_process_group("gloo")
dm = PretrainDataModule(json.loads(sys.argv[1]), {"vocab_size": 300}, sys.argv[2])
dm.prepare_data()
dm.setup()
loader = dm.train_dataloader()
if dm.source_names:  # a mixture: each source's rows on this process in its first pass
    print("PASS", dist.get_rank(), json.dumps([ds.get_len(1, 1) for ds in loader.dataset.datasets]))
batches = list(loader)
rows = [r for b in batches for r in b["input_ids"].tolist()]
print("ROWS", dist.get_rank(), json.dumps(rows))
if dm.source_names:  # a mixture: each row's source, and the sources the draw gives this process
    sampler = dm.train_sampler()
    print("SOURCES", dist.get_rank(), json.dumps([s for b in batches for s in b["source"].tolist()]))
    print("DRAW", dist.get_rank(), json.dumps(sampler.sources(0, len(batches) * sampler.global_batch).tolist()))
dist.destroy_process_group()
"""


def _two_processes(data: dict, url: str, tmp_path: Path) -> dict[str, dict[int, list]]:
    """`_RANK_ROWS` in 2 torchrun processes (gloo): what each printed, by kind (ROWS, ...) and rank."""
    script = tmp_path / "rows.py"
    script.write_text(_RANK_ROWS)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), json.dumps(data), url], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, dict[int, list]] = {}
    for line in proc.stdout.splitlines():
        kind, rank, payload = line.split(" ", 2) if line.count(" ") >= 2 else (line, "-1", "null")
        if kind in ("ROWS", "SOURCES", "DRAW", "PASS"):
            out.setdefault(kind, {})[int(rank)] = json.loads(payload)
    return out


def test_two_processes_stream_disjoint_rows(s3, corpus_dir, tmp_path):
    data = {"data_files": {"train": f"{corpus_dir}/*.txt"}, "seq_len": 32, "batch_size": 4}
    rows = _two_processes(data, "s3://lake/library", tmp_path)["ROWS"]
    by_rank = {rank: [tuple(r) for r in rs] for rank, rs in rows.items()}
    assert set(by_rank) == {0, 1} and by_rank[0] and len(by_rank[0]) == len(by_rank[1])
    assert not set(by_rank[0]) & set(by_rank[1])  # each row on one process only


def test_two_processes_stream_a_mixture_by_the_draw_with_disjoint_rows(s3, corpus_dir, tmp_path):
    from tests.unit.test_mixture import _source

    mixture = {"books": {"weight": 3, "data_files": {"train": f"{corpus_dir}/*.txt"}},
               "notes": {"weight": 1, "data_files": {"train": _source(tmp_path, "notes", 2)},
                         "cleaning": {"profile": "dialogue", "near_dedup": None}}}
    data = {"mixture": mixture, "seq_len": 32, "batch_size": 4}
    out = _two_processes(data, "s3://lake/mix2", tmp_path)
    assert set(out["ROWS"]) == {0, 1}
    # each global batch, rank 0's rows then rank 1's, is the weighted draw of one process with the global batch
    mine = out["SOURCES"]
    together = [s for k in range(0, len(mine[0]), 4) for rank in (0, 1) for s in mine[rank][k:k + 4]]
    assert together == out["DRAW"][0] == out["DRAW"][1] and 0 < sum(together) < len(together)
    for source in (0, 1):  # in a source's first pass (LitData's split of it), every row once, none on both
        first = []
        for rank in (0, 1):
            mine = [tuple(r) for r, s in zip(out["ROWS"][rank], out["SOURCES"][rank], strict=True) if s == source]
            first.append(mine[:out["PASS"][rank][source]])
        assert all(first) and all(len(set(f)) == len(f) for f in first) and not set(first[0]) & set(first[1])


def test_ddp_from_s3_sigkill_then_resume_auto_is_exact(s3, corpus_dir, tmp_path):
    # 25 batches a process make LitData's epoch: killed in the first, the run resumes across the boundary into the
    # second (where LitData alone replays the restored epoch instead of shuffling a new one; see _epoch_loader)
    common = [*tiny(corpus_dir, tmp_path), "paths.data_dir=s3://lake/ddp", "logger=csv", "data.batch_size=8",
              "trainer.max_steps=34", "trainer.val_check_interval=17", "checkpoint.every_n_train_steps=5",
              "samples.max_new_tokens=1", "strategy=ddp", "trainer.devices=2", "trainer.precision=32-true"]
    straight = llm("train", *common, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    run = tmp_path / "killed"
    _run_until([sys.executable, "-m", "lightning_llm.cli.train", *common, f"hydra.run.dir={run}"], tmp_path,
               run / "checkpoints" / "step-0000010.ckpt")
    resumed_from = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.ckpt"))
    assert resumed_from < 25
    resumed = llm("train", *common, "resume=auto", f"hydra.run.dir={run}", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = losses(tmp_path / "straight"), losses(run)
    after = [s for s in a if s >= resumed_from]
    assert after and [b[s] for s in after] == [a[s] for s in after]  # bit-identical losses after the kill
    wa, wb = (load_file(d / "export" / "model.safetensors") for d in (tmp_path / "straight", run))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "straight", run))
    assert ma["val"] == mb["val"] and ma["prepared_data"] == mb["prepared_data"]


def test_a_missing_or_unreachable_bucket_is_one_line_naming_the_url(s3, corpus_dir, tmp_path):
    args = [*tiny(corpus_dir, tmp_path), "logger=csv", "trainer.max_steps=2"]
    proc = llm("train", *args, "paths.data_dir=s3://no-such-bucket/prepared", f"hydra.run.dir={tmp_path / 'a'}",
               cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "s3://no-such-bucket/prepared/" in last and "'no-such-bucket' does not exist" in last, last
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    proc = subprocess.run([sys.executable, "-m", "lightning_llm.cli.train", *args, "paths.data_dir=s3://lake/x",
                           f"hydra.run.dir={tmp_path / 'b'}"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "s3://lake/x/" in proc.stderr.strip().splitlines()[-1] and "unreachable" in proc.stderr


def test_a_mixture_streams_by_weight_every_row_its_source_and_resumes_exactly(s3, tmp_path):
    """A mixture prepared to s3:// and streamed: each training row comes from the source the weighted draw names (the
    memmap path's draw) and is one of that source's rows; evaluation streams every row of every source once; a run
    resumed from a checkpoint gives the uninterrupted run's losses, across the small source's epoch boundary."""
    from lightning_llm.data import PretrainDataModule
    from tests.unit.test_mixture import _data, _losses_and_state, _source

    mixture = {"a": {"weight": 3, "data_files": {"train": _source(tmp_path, "a", 1)}, "cleaning": "books"},
               "b": {"weight": 1, "data_files": {"train": _source(tmp_path, "b", 2)},
                     "cleaning": {"profile": "dialogue", "near_dedup": None}}}

    def datamodule(where):
        dm = PretrainDataModule(_data(mixture), {"vocab_size": 300}, where, seed=5)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    streamed, local = datamodule("s3://lake/mix"), datamodule(tmp_path / "local")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="mix/")["Contents"]}
    name = local.prepared_dir.name
    assert {f"mix/{name}/{split}/{src}/index.json" for split in ("train", "validation", "test") for src in "ab"} <= keys
    assert streamed.source_names == local.source_names == ["a", "b"]
    rows_of = {}  # each source's rows, per split, from the memmap path
    for split in ("train", "validation", "test"):
        ds = local.datasets[split]
        for i in range(len(ds)):
            item = ds[i]
            rows_of.setdefault((split, int(item["source"])), []).append(tuple(item["input_ids"].tolist()))

    draw = streamed.train_sampler()
    small = len(rows_of[("train", 1)])
    steps = next(k for k in range(1, 10_000) if draw.rank_counts(k)[1] > small) + 3  # past b's first epoch
    batches, loader = [], streamed.train_dataloader()
    while len(batches) < steps:  # as Lightning takes them: len(loader) batches an epoch
        for i, batch in enumerate(loader):
            batches.append(batch)
            if len(batches) == steps or i + 1 == len(loader):
                break
    sources = torch.cat([b["source"] for b in batches]).numpy()
    assert (sources == draw.sources(0, steps * 4)).all()  # the memmap path's draw
    rows = [tuple(r) for b in batches for r in b["input_ids"].tolist()]
    assert all(r in rows_of[("train", s)] for r, s in zip(rows, sources, strict=True))
    first_epoch_of_b = [r for r, s in zip(rows, sources, strict=True) if s == 1][:small]
    assert sorted(first_epoch_of_b) == sorted(rows_of[("train", 1)])  # every row of b once, then b again
    for split in ("validation", "test"):  # every row once, with its source
        got = sorted((int(s), tuple(r)) for b in streamed.eval_dataloader(split)
                     for s, r in zip(b["source"].tolist(), b["input_ids"].tolist(), strict=True))
        assert got == sorted((s, r) for (sp, s), rs in rows_of.items() if sp == split for r in rs)

    every = steps // 2
    whole = _losses_and_state(datamodule("s3://lake/mix"), tmp_path, steps, every=every)
    (ckpt,) = [p for p in (tmp_path / "ckpt").glob("*.ckpt") if f"step={every}." in p.name]
    resumed = _losses_and_state(datamodule("s3://lake/mix"), tmp_path, steps, ckpt=str(ckpt))
    assert resumed == whole[every:]


def test_a_prepared_url_is_a_mixture_source_downloaded_or_streamed_from_where_it_is(s3, tmp_path):
    """A source published to s3:// by llm-prepare, in a mixture: prepared on this machine, its rows are downloaded
    into the mixture's shards, in order; streamed (the mixture's data_dir a URL too), it is streamed from its own URL
    (not copied under the mixture's) by the weighted draw, and evaluation streams each of its rows once."""
    from lightning_llm.data import PretrainDataModule
    from tests.unit.test_mixture import _data, _prepared, _rows, _source

    spec = {"data_files": {"train": _source(tmp_path, "a", 1)}, "cleaning": {"profile": "books"}}
    a_local = _prepared(spec, tmp_path)
    publisher = PretrainDataModule({k: v for k, v in _data({}).items() if k != "mixture"} | spec, {"vocab_size": 300},
                                   "s3://lake/sources")
    publisher.prepare_data()
    url = publisher.stream_url
    mixture = {"a": {"weight": 3, "prepared": url},
               "b": {"weight": 1, "data_files": {"train": _source(tmp_path, "b", 2)}, "cleaning": "dialogue"}}

    def datamodule(where):
        dm = PretrainDataModule(_data(mixture), {"vocab_size": 300}, where, seed=5)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    local, streamed = datamodule(tmp_path / "local"), datamodule("s3://lake/mix")
    for split in ("train", "validation", "test"):
        assert _rows(local.prepared_dir, split, 0) == _rows(a_local, split)  # downloaded, in order
    assert streamed.manifest["mixture"]["a"]["url"] == url and "url" not in local.manifest["mixture"]["a"]
    # its own folder of the bucket (another test streams a mixture with a source `a` under mix/ too)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix=f"mix/{streamed.prepared_dir.name}/")
            ["Contents"]}
    assert any(k.endswith("/train/b/index.json") for k in keys) and not any("/train/a/" in k for k in keys)

    rows_of = {(split, s): [tuple(r[:-1]) for r in _rows(local.prepared_dir, split, s)]
               for split in ("train", "validation", "test") for s in (0, 1)}
    steps = 12
    batches = []
    for batch in streamed.train_dataloader():
        batches.append(batch)
        if len(batches) == steps:
            break
    sources = torch.cat([b["source"] for b in batches]).numpy()
    assert (sources == streamed.train_sampler().sources(0, steps * 4)).all() and set(sources) == {0, 1}
    rows = [tuple(r) for b in batches for r in b["input_ids"].tolist()]
    assert all(r in rows_of[("train", s)] for r, s in zip(rows, sources, strict=True))
    for split in ("validation", "test"):
        got = sorted((int(s), tuple(r)) for b in streamed.eval_dataloader(split)
                     for s, r in zip(b["source"].tolist(), b["input_ids"].tolist(), strict=True))
        assert got == sorted((s, r) for (sp, s), rs in rows_of.items() if sp == split for r in rs)

    missing = PretrainDataModule(_data({"a": {"prepared": "s3://lake/nothing"}}), {}, tmp_path / "x")
    with pytest.raises(Exception, match=r"^data\.mixture\.a\.prepared=s3://lake/nothing has no manifest\.json"):
        missing.prepare_data()
