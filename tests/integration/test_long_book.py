"""A single plain-text book of over a megabyte trains under the default recipe: cleaning judges it chapter by
chapter, so no document-level rule can drop the whole corpus."""

from __future__ import annotations

import json
import random

import pytest

from tests.integration.conftest import llm
from tests.unit.test_cleaning_profiles import book


@pytest.mark.slow  # ~60 s: runs in CI after the default suite
def test_a_one_file_book_of_a_megabyte_trains_under_the_default_recipe(tmp_path):
    text = book(random.Random(0), chapters=360)
    # every chapter repeats a formula, as real books do (names, refrains): 5-gram repetition of the whole book
    # is far above Gopher's web threshold, each chapter's is not
    text = text.replace("\n\nCHAPTER", "\n\nAnd so the tale of the long book goes on.\n\nCHAPTER")
    assert len(text) > 1_000_000
    (tmp_path / "book.txt").write_text(text)
    proc = llm("train", f"data.data_files.train={tmp_path}/book.txt", f"paths.data_dir={tmp_path}/data",
               f"hydra.run.dir={tmp_path}/run", "logger=csv", "trainer.max_steps=3", "trainer.val_check_interval=3",
               "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "samples.prompts=[]",
               "tokenizer.vocab_size=512", "trainer.accelerator=cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next((tmp_path / "data").rglob("cleaning_report.json")).read_text())
    rules = next(s for s in report["steps"] if s["step"] == "quality rules")
    assert rules["profile_books"] == 1 and rules["units"] > 40  # judged as a book, unit by unit
    kept = report["bytes_out"] / len(text.encode())
    assert kept > 0.95 and not report["warnings"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["loss"] > 0 and metrics["steps"] == 3
