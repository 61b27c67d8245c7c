"""The CLI end to end on data made here: llm-train (train, resume), llm-prepare, llm-generate, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lightning_llm.cli._app import CONF_DIR, RECIPES_DIR, check_recipe_arg
from lightning_llm.tasks.defaults import resolve_auto
from tests.integration.conftest import llm, tiny


def test_train_writes_metrics_export_curves_and_checkpoints(trained: Path):
    metrics = json.loads((trained / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]) == {"loss", "ppl", "bpb"}
        assert 0 < metrics[split]["bpb"] < 20 and metrics[split]["ppl"] > 1
    assert metrics["steps"] == 20 and metrics["tokens_trained"] == 20 * 8 * 32
    assert metrics["perf"]["energy_j"] > 0 and metrics["perf"]["tokens_per_j"] > 0 and metrics["perf"]["co2_g"] > 0
    assert metrics["energy_source"].split(":")[0] in ("estimate", "rapl", "nvml")
    assert (trained / "curves.png").stat().st_size > 10_000
    assert (trained / "checkpoints" / "last.ckpt").exists()
    rows = list(csv.DictReader((trained / "csv" / "metrics.csv").open()))
    assert any(r.get("train/loss") for r in rows) and any(r.get("val/bpb") for r in rows)
    # every 10 optimizer steps, at the step Lightning logs those batches' train/loss at (one behind global_step)
    assert [r["step"] for r in rows if r.get("eval/task/acc")] == ["9", "19"]

    from transformers import pipeline

    export = trained / "export"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= \
        {p.name for p in export.iterdir()}
    out = pipeline("text-generation", model=str(export), device="cpu")("The king", max_new_tokens=5,
                                                                        do_sample=False)
    assert out[0]["generated_text"].startswith("The king") and len(out[0]["generated_text"]) > len("The king")

    from gguf import GGUFReader  # export.gguf=f16: the same model for llama.cpp, beside its Ollama Modelfile

    gguf_file = trained / "export-f16.gguf"
    tensors = {t.name: t.tensor_type.name for t in GGUFReader(gguf_file).tensors}
    assert tensors["blk.0.attn_q.weight"] == "F16" and tensors["output_norm.weight"] == "F32"
    assert "FROM ./export-f16.gguf" in (trained / "export-f16.Modelfile").read_text()


def test_resume_from_checkpoint_continues_the_step_count(trained: Path, corpus_dir, tmp_path):
    run = tmp_path / "resumed"
    proc = llm("train", *tiny(corpus_dir, trained.parent), "trainer.max_steps=30", "logger=none",
               "trainer.precision=bf16-mixed", f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}",
               f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["tokens_trained"] == 30 * 8 * 32
    assert metrics["precision"] == "bf16-mixed" and metrics["host"]


def test_generate_streams_a_continuation_and_rejects_bad_input(trained: Path, capsys):
    from lightning_llm.cli.generate import main, parse_args, run

    args = parse_args([str(trained / "export"), "Good night, sweet", "--max-new-tokens", "8", "--seed", "0"])
    outs = run(args)
    assert outs[0].startswith("Good night, sweet") and len(outs[0]) > len("Good night, sweet")
    assert "Good night, sweet" in capsys.readouterr().out
    greedy = parse_args([str(trained / "export"), "The king", "--temperature", "0", "--no-stream",
                         "--max-new-tokens", "8"])
    assert run(greedy) == run(greedy)
    for argv, message in (([str(trained), "x"], "is not a complete model folder: missing config.json"),
                          ([str(trained / "export"), ""], "empty prompt"),
                          ([str(trained / "export"), "x", "--max-new-tokens", "100"], "exceeds the model's context")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bad_input_is_one_clear_line(corpus_dir, tmp_path, capsys):
    proc = llm("train", *tiny(corpus_dir, tmp_path), "data.data_files.train=/nonexistent/*.txt", "logger=none",
               f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: data.data_files.train: no file matches '/nonexistent/*.txt'; "
        "point it at existing files (a path, a glob or a list)")
    assert "Traceback" not in proc.stderr

    proc = llm("train", *tiny(corpus_dir, tmp_path), "export.gguf=q5_k", "logger=none",
               f"hydra.run.dir={tmp_path / 'g'}", cwd=tmp_path)
    assert proc.returncode == 2 and not (tmp_path / "g" / "checkpoints").exists()  # refused before training
    assert proc.stderr.strip().splitlines()[-1] == ("error: export.gguf='q5_k': choose one of "
                                                    "['f32', 'f16', 'bf16', 'q8_0', 'q4_0']")

    with pytest.raises(SystemExit) as exit_info:
        check_recipe_arg(["recipe=nosuch"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: unknown recipe 'nosuch' (no recipes/nosuch.yaml); choose one of " \
        f"{sorted(p.stem for p in RECIPES_DIR.glob('*.yaml'))}\n"


def test_every_recipe_and_option_composes():
    recipes = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert {"shakespeare", "tiny"} <= set(recipes)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for recipe in recipes:
            for extra in ([], ["logger=csv"], ["logger=none"], ["model=gpt2"]):
                cfg = compose("train", overrides=[f"recipe={recipe}", *extra])
                resolve_auto(cfg, 134_515_008)  # the fine-tuning recipes' `auto` keys, as for a real base
                assert cfg.data.seq_len > 0 and cfg.trainer.max_steps > 0
        default = compose("train")
        assert default.data.corpus == "shakespeare" and default.logger._target_.endswith("wandb_logger")
        assert compose("prepare").data == default.data
        for recipe in ("shakespeare", "tiny", "distill"):  # the recipes of one machine compose for every verb
            prepare = compose("prepare", overrides=[f"recipe={recipe}"])
            assert prepare.data == compose("train", overrides=[f"recipe={recipe}"]).data
            assert "logger" not in prepare and "strategy" not in prepare
            assert compose("eval", overrides=[f"recipe={recipe}", "model_path=x"]).data == prepare.data


def test_strategy_and_slurm_configs_compose():
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for strategy in ("auto", "ddp", "fsdp", "fsdp2", "deepspeed", "deepspeed_zero3"):
            cfg = compose("train", overrides=[f"strategy={strategy}"])
            assert strategy == "auto" or cfg.strategy._target_.startswith(("lightning", "lightning_llm"))
        assert compose("train", overrides=["strategy=deepspeed_zero3"]).strategy.stage == 3
        ddp = instantiate(compose("train", overrides=["strategy=ddp"]).strategy)
        assert type(ddp).__name__ == "DDPStrategy"
        fsdp = instantiate(compose("train", overrides=["strategy=fsdp"]).strategy)
        assert {c.__name__ for c in fsdp.kwargs["auto_wrap_policy"]._module_classes} == {"LlamaDecoderLayer"}

        cfg = compose("train", overrides=["recipe=slurm_multinode", "trainer.num_nodes=4", "trainer.devices=8"],
                      return_hydra_config=True)
        launcher = cfg.hydra.launcher
        assert launcher._target_.endswith("SlurmLauncher")
        assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (4, 8, 8)
        assert cfg.strategy._target_.endswith("DDPStrategy") and cfg.trainer.precision == "bf16-mixed"


def test_prepare_cleans_a_folder_of_html_jsonl_and_txt(tmp_path):
    import random

    from tests.conftest import make_document

    rng = random.Random(3)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        body = "".join(f"<p>{line}</p>" for line in make_document(rng).splitlines())
        (src / f"page{i}.html").write_text(f"<html><head><script>track({i})</script></head><body><nav>Home | "
                                          f"Login</nav><article><h1>Page {i}</h1>{body}</article></body></html>")
    (src / "docs.jsonl").write_text("\n".join(json.dumps({"text": make_document(rng), "url": f"u{i}"})
                                              for i in range(4)) + "\n{broken\n")
    (src / "note.txt").write_text(make_document(rng))
    out = tmp_path / "prepared"
    proc = llm("prepare", f"data.data_files.train=[{src}/*.html,{src}/*.jsonl,{src}/*.txt]", f"paths.data_dir={out}",
               "data.seq_len=16", "tokenizer.vocab_size=300", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Cleaning report" in proc.stdout and "malformed_json: 1" in proc.stdout
    report = json.loads(next(out.rglob("cleaning_report.json")).read_text())
    assert report["records_in"] == 9 and report["dropped"]["malformed_json"] == 1
    corpus = [json.loads(line) for f in next(out.rglob("cleaning_report.json")).parent.glob("corpus/*.jsonl")
              for line in f.open()]
    assert len(corpus) == report["documents_out"] and all(isinstance(d["text"], str) for d in corpus)
    assert not any("track(" in d["text"] or "Login" in d["text"] for d in corpus)  # HTML reduced to its text
    from_jsonl = [d for d in corpus if d["source"].endswith("docs.jsonl")]
    assert from_jsonl and all(d["url"].startswith("u") for d in from_jsonl)  # metadata travels with the text
    assert list(out.rglob("shards/train-*.npy"))  # beside the token shards


def export_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("export", overrides=list(overrides))


def test_export_from_a_checkpoint_round_trips_the_logits(trained: Path, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from lightning_llm.cli.export import export
    from lightning_llm.cli.generate import main as generate_main
    from lightning_llm.errors import UserError
    from lightning_llm.training.module import CausalLMModule

    ckpt = trained / "checkpoints" / "last.ckpt"
    export(export_cfg(f"model_path={ckpt}", f"out={tmp_path / 'hf'}"))
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= \
        {p.name for p in (tmp_path / "hf").iterdir()}
    module = CausalLMModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = AutoTokenizer.from_pretrained(tmp_path / "hf")("Good night, sweet prince", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, module(ids), rtol=0, atol=1e-5)
    out = pipeline("text-generation", model=str(tmp_path / "hf"), device="cpu")("The", max_new_tokens=3)
    assert out[0]["generated_text"].startswith("The")

    capsys.readouterr()
    generate_main([str(ckpt), "The king", "--max-new-tokens", "4", "--no-stream", "--seed", "0"])
    assert capsys.readouterr().out.startswith("The king")

    (tmp_path / "bad.ckpt").write_bytes(ckpt.read_bytes()[:1000])
    for overrides, message in ((["model_path=" + str(tmp_path / "bad.ckpt")], "could not load"),
                               (["model_path=" + str(tmp_path / "none.ckpt")], "does not exist"),
                               ([f"model_path={ckpt}", "format=tflite"], "format='tflite': choose one of"),
                               ([f"model_path={ckpt}", "format=gguf", "gguf.type=q5_k"], "gguf.type='q5_k': choose"),
                               ([f"model_path={ckpt}", "quantize=int4"], "quantize='int4': choose one of")):
        with pytest.raises(UserError, match=message):
            export(export_cfg(*overrides, f"out={tmp_path / 'x'}"))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # ~20-60 s: runs in CI after the default suite
def test_eval_reproduces_the_training_test_metrics_and_scores_tasks(trained: Path, corpus_dir, tmp_path):
    tasks = tmp_path / "tiny_task.jsonl"
    tasks.write_text("\n".join(json.dumps({"context": f"The king and the queen {i}", "choices": [" speak.", " zzz"],
                                           "label": 0}) for i in range(4)) + "\n")
    from tests.integration.test_deployment import HARNESS_TASK

    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "tiny_mc.yaml").write_text(HARNESS_TASK.format(data=tasks))
    # no data keys: the run's own prepared data, found through <run>/metrics.json
    proc = llm("eval", f"model_path={trained / 'export'}", "data.batch_size=8", "max_batches=20", f"tasks=[{tasks}]",
               "num_fewshot=1", f"hydra.run.dir={tmp_path / 'eval'}", "harness.tasks=[tiny_mc]",
               f"harness.include_path={tmp_path / 'harness'}", "logger=wandb", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    harness = result["harness"]["tiny_mc"]  # scored like ours: see test_harness_scores_like_our_multiple_choice
    assert harness["sample_len"] == 4 and 0 <= harness["acc"] <= 1 and "acc_norm" in harness
    assert "wandb sync" in proc.stdout and list((tmp_path / "eval" / "wandb").glob("offline-run-*"))
    trained_metrics = json.loads((trained / "metrics.json").read_text())
    # llm-eval scores in fp32; the run evaluated under its own precision (bf16-mixed: logits rounded to bf16)
    rel = 1e-4 if trained_metrics["precision"] == "32-true" else 2e-3
    for key in ("loss", "bpb"):  # the same model, tokenizer, documents and batches as the training run's
        assert result["splits"]["validation"][key] == pytest.approx(trained_metrics["val"][key], rel=rel)
        assert result["splits"]["test"][key] == pytest.approx(trained_metrics["test"][key], rel=rel)
    assert result["data"] == trained_metrics["prepared_data"]
    assert result["tasks"]["tiny_task"]["n"] == 4 and 0 <= result["tasks"]["tiny_task"]["acc"] <= 1
    assert "tiny_task" in proc.stdout and "acc_norm" in proc.stdout

    bad = tmp_path / "bad_task.jsonl"
    bad.write_text('{"context": "a", "choices": ["b", "c"], "label": 0}\n{"context": "a", "choices": ["b"]}\n')
    proc = llm("eval", f"model_path={trained / 'export'}", "splits=[test]", f"tasks=[{bad}]", "max_batches=1",
               f"data.data_files.train={corpus_dir}/*.txt", "data.seq_len=32", f"paths.data_dir={tmp_path}/data",
               f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)  # other text: prepared with the model's tokenizer
    assert proc.returncode == 2 and "bad_task.jsonl:2: not a task line" in proc.stderr
    assert list((tmp_path / "data").glob("*/manifest.json"))


@pytest.mark.slow  # ~50 s: two CLI runs
def test_continued_pretraining_starts_where_llm_eval_scores_the_base(tiny_export, corpus_dir, tmp_path):
    data = [f"data.data_files.train={corpus_dir}/*.txt", "data.max_files=null", "data.seq_len=32",
            f"paths.data_dir={tmp_path}/data"]
    proc = llm("train", "recipe=tiny", f"init_from={tiny_export}", *data, "trainer.max_steps=6",
               "trainer.val_check_interval=3", "checkpoint.every_n_train_steps=3", "optim.warmup_steps=1",
               "logger=csv", "trainer.precision=32-true", "samples.max_new_tokens=4",
               f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    before, after = metrics["val_before_training"]["bpb"], metrics["val"]["bpb"]
    assert after < before and f"val/bpb before training (init_from={tiny_export}): {before:.4f}" in proc.stdout
    base = json.loads((tiny_export / "config.json").read_text())
    export = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert {k: export[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")} == \
        {k: base[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")}  # its architecture, not the recipe's
    assert (tmp_path / "run" / "export" / "tokenizer.json").read_text() == (tiny_export / "tokenizer.json").read_text()
    resumed = llm("train", "recipe=tiny", f"init_from={tiny_export}", *data, "trainer.max_steps=9",
                  "trainer.val_check_interval=3", "checkpoint.every_n_train_steps=3", "optim.warmup_steps=1",
                  "logger=csv", "trainer.precision=32-true", "samples.max_new_tokens=4", "resume=auto",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 9 and metrics["val_before_training"]["bpb"] == before  # kept across the resume

    ev = llm("eval", f"model_path={tiny_export}", *data, "splits=[validation]", f"hydra.run.dir={tmp_path / 'eval'}",
             cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    scored = json.loads((tmp_path / "eval" / "eval.json").read_text())["splits"]["validation"]
    assert scored["bpb"] == pytest.approx(before, rel=1e-6)  # the base model's own figure, before the first step
