"""Deployment and compression on the trained tiny run: int8 and ONNX exports read by their runtimes,
lm-evaluation-harness in process, distillation into a smaller student, and the bad inputs around them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_llm.cli._app import CONF_DIR
from lightning_llm.errors import UserError
from tests.integration.conftest import llm, tiny


def export_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("export", overrides=list(overrides))


def text_loss(model, tokenizer, text: str) -> float:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


TEXT = "Good night, sweet lady. The king and the queen speak of love and death before the day.\\n" * 2


def test_int8_export_is_smaller_loads_in_transformers_and_keeps_the_loss(trained: Path, tmp_path):
    from torchao.quantization import Int8Tensor
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lightning_llm.cli.export import export

    out = export(export_cfg(f"model_path={trained / 'checkpoints' / 'last.ckpt'}", "quantize=int8"))
    assert out == trained / "export-last-int8" and (out / "model.safetensors").is_file()
    fp32 = AutoModelForCausalLM.from_pretrained(trained / "export")
    int8 = AutoModelForCausalLM.from_pretrained(out)  # as a user loads it: nothing of ours involved
    assert isinstance(int8.model.layers[0].mlp.up_proj.weight, Int8Tensor)
    assert int8.lm_head.weight is int8.model.embed_tokens.weight  # the tied embedding stays as it was
    assert (out / "model.safetensors").stat().st_size < 0.5 * (trained / "export" / "model.safetensors").stat().st_size
    tok = AutoTokenizer.from_pretrained(out)
    base, quant = text_loss(fp32, tok, TEXT), text_loss(int8, tok, TEXT)
    assert abs(quant - base) < 0.02 * base, (base, quant)
    ids = tok("The king", return_tensors="pt").input_ids
    assert int8.generate(ids, max_new_tokens=5, do_sample=False).shape[1] == ids.shape[1] + 5

    from lightning_llm.inference.int8 import DynamicInt8Linear
    from lightning_llm.inference.loading import load_model

    with pytest.raises(UserError, match="is already quantized"):
        export(export_cfg(f"model_path={out}", "format=onnx"))
    fast, _ = load_model(out)  # what llm-generate and llm-eval run on CPU
    assert isinstance(fast.model.layers[0].mlp.up_proj, DynamicInt8Linear)
    assert isinstance(fast.lm_head, DynamicInt8Linear)
    assert abs(text_loss(fast, tok, TEXT) - base) < 0.02 * base
    assert fast.generate(ids, max_new_tokens=5, do_sample=False).shape[1] == ids.shape[1] + 5


@pytest.mark.slow  # ~20-60 s: runs in CI after the default suite
def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(trained: Path, tmp_path):
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lightning_llm.inference.loading import load_model
    from lightning_llm.inference.onnx_generation import onnx_session

    proc = llm("export", str(trained / "export"), str(tmp_path / "onnx"), "format=onnx", cwd=tmp_path)  # positional
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "onnxruntime logits match" in proc.stdout
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.glob("*.log"))  # a converter leaves no run
    assert {"model.onnx", "config.json", "tokenizer.json"} <= {p.name for p in (tmp_path / "onnx").iterdir()}
    tok = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    ids = tok(["Good night, sweet prince", "The king"], return_tensors="np", padding=True)
    logits = onnx_session(tmp_path / "onnx" / "model.onnx").run(
        ["logits"], {"input_ids": ids["input_ids"].astype(np.int64),
                     "attention_mask": ids["attention_mask"].astype(np.int64)})[0]
    model = AutoModelForCausalLM.from_pretrained(trained / "export").eval()
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids["input_ids"][:1])).logits.numpy()
    np.testing.assert_allclose(logits[:1], want, atol=1e-4)
    with pytest.raises(UserError, match="is an ONNX export: run it with onnxruntime"):
        load_model(tmp_path / "onnx")

    from lightning_llm.cli.generate import parse_args, run

    greedy = ["The king", "--temperature", "0", "--max-new-tokens", "12", "--no-stream"]
    assert run(parse_args([str(tmp_path / "onnx"), *greedy])) == run(parse_args([str(trained / "export"), *greedy]))
    sampled = run(parse_args([str(tmp_path / "onnx"), "The king", "--seed", "3", "--max-new-tokens", "8"]))
    assert sampled[0].startswith("The king") and len(sampled[0]) > len("The king")
    with pytest.raises(UserError, match="exceeds the model's context"):
        run(parse_args([str(tmp_path / "onnx"), "The king", "--max-new-tokens", "100"]))


def test_exports_name_what_is_missing(trained: Path, tmp_path, capsys):
    from lightning_llm.cli.export import export
    from lightning_llm.cli.generate import main as generate_main

    broken = tmp_path / "broken"
    shutil.copytree(trained / "export", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"missing weights \(model.safetensors"):
        export(export_cfg(f"model_path={broken}", "quantize=int8"))
    with pytest.raises(SystemExit):
        generate_main([str(broken), "The king"])
    assert "is not a complete model folder: missing weights" in capsys.readouterr().err
    with pytest.raises(UserError, match="already a Hugging Face folder"):
        export(export_cfg(f"model_path={trained / 'export'}"))


def test_resuming_into_another_model_config_names_the_difference(trained: Path, corpus_dir, tmp_path):
    proc = llm("train", *tiny(corpus_dir, trained.parent), "logger=none", "model.config.hidden_size=32",
               f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "was trained with another model config (model.config.hidden_size: 64 in the checkpoint, 32 now)" \
        in proc.stderr


@pytest.mark.slow  # ~20-60 s: runs in CI after the default suite
def test_harness_scores_like_our_multiple_choice(trained: Path, tmp_path):
    from lightning_llm.evaluation.harness import run_harness
    from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
    from lightning_llm.inference.loading import load_model

    questions = tmp_path / "mc.jsonl"
    choices = [" sweet lady.", " sword of death.", " zzz qq.", " night and day."]
    questions.write_text("\n".join(json.dumps({"context": f"The {w} said", "choices": choices, "label": i % 4})
                                   for i, w in enumerate(["king", "queen", "lord", "lady", "noble", "fair"])) + "\n")
    (tmp_path / "mc.yaml").write_text(HARNESS_TASK.format(data=questions))
    model, tok = load_model(trained / "export")
    ours = evaluate_task(model, tok, load_task(questions))
    theirs = run_harness(model, tok, ["tiny_mc"], include_path=tmp_path)["tiny_mc"]
    assert (theirs["acc"], theirs["acc_norm"]) == (ours["acc"], ours["acc_norm"])
    with pytest.raises(UserError, match="has no task"):
        run_harness(model, tok, ["no_such_task"], include_path=tmp_path)


HARNESS_TASK = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


# bf16-mixed, as a GPU distils (the teacher trained in it too); the loss code is the same in 32-true, where the
# fine-tuning matrix and the DDP resume run train
@pytest.mark.slow
def test_distillation_recipe_trains_a_student_from_the_teacher(trained: Path, corpus_dir, tmp_path):
    precision = "bf16-mixed"
    from lightning_llm.inference.checkpoint import load_checkpoint

    run = tmp_path / "student"
    student = ["recipe=distill", f"distill.teacher={trained / 'export'}", f"data.data_files.train={corpus_dir}/*.txt",
               "data.seq_len=32", "data.batch_size=8", f"paths.data_dir={trained.parent}/data", "trainer.max_steps=6",
               "trainer.val_check_interval=3", "checkpoint.every_n_train_steps=3", "optim.warmup_steps=1",
               "model.config.hidden_size=32", "model.config.intermediate_size=64", "model.config.num_hidden_layers=1",
               "model.config.max_position_embeddings=64", "trainer.limit_val_batches=2", "samples.max_new_tokens=4",
               "logger=csv", f"hydra.run.dir={run}", "trainer.accelerator=cpu", f"trainer.precision={precision}"]
    proc = llm("train", *student, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Distilling from" in proc.stderr + proc.stdout
    rows = (run / "csv" / "metrics.csv").read_text()
    assert "train/kd" in rows and "train/ce" in rows
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("teacher" in k for k in state["state_dict"])  # the teacher stays out of student checkpoints
    model, _ = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert model.config.hidden_size == 32 and model.num_parameters() < 0.5 * json.loads(
        (trained / "metrics.json").read_text())["parameters"]

    missing = llm("train", "recipe=distill", "logger=none", f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    assert missing.returncode == 2 and "recipe=distill needs its teacher" in missing.stderr


def test_a_teacher_with_another_tokenizer_is_refused(trained: Path):
    from transformers import AutoTokenizer

    from lightning_llm.training.distillation import check_teacher_tokenizer

    same = AutoTokenizer.from_pretrained(trained / "export")
    check_teacher_tokenizer(trained / "export", same)
    other = AutoTokenizer.from_pretrained(trained / "export")
    other.add_tokens(["<extra>"])
    with pytest.raises(UserError, match="uses another tokenizer than the student's data"):
        check_teacher_tokenizer(trained / "export", other)
