"""Fine-tuning recipes end to end through `llm-train`, on tiny made data and the tiny export."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.integration.conftest import llm

WORDS = ["king", "queen", "lord", "lady", "good", "night", "love", "sword", "crown", "fair", "sweet", "noble"]
FAST = ["trainer.max_steps=6", "trainer.val_check_interval=3", "checkpoint.every_n_train_steps=3",
        "optim.warmup_steps=1", "data.seq_len=64", "data.batch_size=4", "finetune.eval.max_examples=6",
        "finetune.eval.max_new_tokens=6", "logger=csv", "trainer.accelerator=cpu"]


def _phrase(rng: random.Random, lo: int = 2, hi: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


@pytest.fixture(scope="module")
def task_data(tmp_path_factory) -> Path:
    """Files in every format the recipes read: SQuAD JSONL, line-aligned pairs, summary pairs, prompt/response,
    chat messages, CoNLL."""
    d = tmp_path_factory.mktemp("taskdata")
    rng = random.Random(0)
    with open(d / "squad.jsonl", "w") as f:
        for _ in range(80):
            who = rng.choice(["Hamlet", "Horatio", "Ophelia"])
            line = _phrase(rng, 4, 8)
            f.write(json.dumps({"context": f"{who}.\n{line}", "question": f"Who says \"{line}\"?",
                                "answers": {"text": [who], "answer_start": [0]}}) + "\n")
    src = [_phrase(rng) for _ in range(80)]
    (d / "train.en").write_text("\n".join(src) + "\n")
    (d / "train.es").write_text("\n".join(s.replace("king", "rey").replace("queen", "reina") for s in src) + "\n")
    with open(d / "summaries.jsonl", "w") as f:
        for _ in range(80):
            summary = _phrase(rng, 2, 3)
            f.write(json.dumps({"dialogue": f"{summary}. {_phrase(rng, 8, 14)}", "summary": summary}) + "\n")
    with open(d / "sft.jsonl", "w") as f:
        for _ in range(80):
            p = _phrase(rng)
            f.write(json.dumps({"prompt": f"Repeat: {p}", "response": p}) + "\n")
    with open(d / "chat.jsonl", "w") as f:
        for _ in range(80):
            a, b = _phrase(rng), _phrase(rng)
            f.write(json.dumps({"messages": [{"role": "user", "content": a}, {"role": "assistant", "content": b},
                                             {"role": "user", "content": b}, {"role": "assistant", "content": a}]})
                    + "\n")
    with open(d / "train.conll", "w") as f:
        for _ in range(120):
            words = [rng.choice(["Hamlet", "Elsinore", *WORDS]) for _ in range(rng.randint(3, 9))]
            tags = ["B-PER" if w == "Hamlet" else "B-LOC" if w == "Elsinore" else "O" for w in words]
            f.write("".join(f"{w} {t}\n" for w, t in zip(words, tags, strict=True)) + "\n")
    return d


RECIPES = {
    "qa": (["data.data_files.train={d}/squad.jsonl"], "exact_match"),
    "translate": (["data.format=lines", "data.data_files.train=[{d}/train.en,{d}/train.es]"], "bleu"),
    "summarize": (["data.data_files.train={d}/summaries.jsonl", "data.column_map.source=dialogue",
                   "data.column_map.target=summary"], "rouge1"),
    "sft": (["data.data_files.train={d}/chat.jsonl", "data.format=messages"], "rougeL"),
    "ner": (["data.format=conll", "data.data_files.train={d}/train.conll"], "f1"),
}


# One precision per recipe, the two alternating, so both run in every CI (the recipes share their training and
# evaluation code; the heads differ): a matrix of both for each cost four minutes more of CI for no other path.
PRECISIONS = {"qa": "bf16-mixed", "translate": "32-true", "summarize": "bf16-mixed", "sft": "32-true",
              "ner": "bf16-mixed"}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_each_recipe_runs_end_to_end_and_prints_its_metric_beside_baselines(recipe, task_data, tiny_export, tmp_path):
    overrides, metric = RECIPES[recipe]
    precision = PRECISIONS[recipe]
    run = tmp_path / "run"
    proc = llm("train", f"recipe={recipe}", f"init_from={tiny_export}", *FAST, f"trainer.precision={precision}",
               *[o.format(d=task_data) for o in overrides], f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metric in metrics["test"] and metric in metrics["val"] and metrics["precision"] == precision
    assert "before_finetuning" in metrics["baselines"] and any(k.startswith("trivial") for k in metrics["baselines"])
    assert "fine-tuned" in proc.stdout and "before_finetuning" in proc.stdout and "trivial" in proc.stdout
    assert (run / "export" / "model.safetensors").is_file()
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert any(r.get(f"val/{metric}") for r in rows)  # logged during training too
    if recipe == "ner":
        ner = llm("ner", str(run / "export"), "Hamlet went to Elsinore", cwd=tmp_path)
        assert ner.returncode == 0 and ner.stdout.startswith("Hamlet went to Elsinore"), ner.stderr[-2000:]
        return
    assert (run / "predictions_test.jsonl").is_file()
    from transformers import pipeline

    chat = pipeline("text-generation", model=str(run / "export"), device="cpu")
    out = chat([{"role": "user", "content": "Repeat: good night"}], max_new_tokens=4, do_sample=False)
    assert out[0]["generated_text"][-1]["role"] == "assistant"  # the chat template was applied
    if recipe == "sft":  # llm-generate chats in the export's template (one recipe: the template code is shared)
        gen = llm("generate", str(run / "export"), "Repeat: good night", "--chat", "--temperature", "0",
                  "--max-new-tokens", "4", "--no-stream", cwd=tmp_path)
        assert gen.returncode == 0 and gen.stdout.startswith("User: Repeat: good night\nAssistant:"), gen.stderr
    if recipe == "qa":  # llm-eval scores an export on a task file the way the run scored its test split
        ev = llm("eval", f"model_path={run / 'export'}", "splits=[]", f"generation.files=[{task_data}/squad.jsonl]",
                 "generation.format=squad", "generation.metrics=[squad]", "generation.max_examples=6",
                 "generation.max_new_tokens=6", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
        assert ev.returncode == 0, ev.stderr[-2000:]
        scores = json.loads((tmp_path / "eval" / "eval.json").read_text())["generation"]["squad"]
        assert set(scores) == {"exact_match", "f1"}


@pytest.mark.slow
def test_resume_auto_continues_a_fine_tuning_run(task_data, tiny_export, tmp_path):
    args = ["recipe=sft", f"init_from={tiny_export}", *FAST, "trainer.precision=bf16-mixed",
            f"data.data_files.train={task_data}/sft.jsonl",
            f"hydra.run.dir={tmp_path / 'run'}"]
    first = llm("train", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    again = llm("train", *args, "trainer.max_steps=9", "resume=auto", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 9


def _losses(run: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader((run / "csv" / "metrics.csv").open())
            if r.get("train/loss")}


@pytest.mark.slow
def test_sft_loss_is_the_same_with_accumulation_and_with_two_ddp_processes(task_data, tiny_export, tmp_path):
    """The step loss is the mean over every response token of the step: one process with 8 rows, one with 2
    accumulated batches of 4, and two DDP processes with 4 each train the same run."""
    common = ["recipe=sft", f"init_from={tiny_export}", *FAST, "trainer.precision=32-true",
              f"data.data_files.train={task_data}/sft.jsonl", "data.pack=false", "optim.weight_decay=0.0",
              "trainer.gradient_clip_val=null"]
    runs = {"one": ["data.batch_size=8"], "accumulate": ["data.batch_size=4", "trainer.accumulate_grad_batches=2"],
            "ddp": ["data.batch_size=4", "strategy=ddp", "trainer.devices=2"]}
    for name, extra in runs.items():
        proc = llm("train", *common, *extra, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
    one = _losses(tmp_path / "one")
    assert sorted(one) == list(range(6))
    for name in ("accumulate", "ddp"):
        other = _losses(tmp_path / name)
        for step, value in one.items():
            assert other[step] == pytest.approx(value, rel=1e-4), (name, step)
