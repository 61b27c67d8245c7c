"""llm-inspect end to end: the page opens in a real browser (headless Chromium) with no console errors and
draws something; the training callback writes the views at its interval."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.integration.conftest import llm


@pytest.mark.slow  # ~20 s; CI installs Debian's chromium first
def test_llm_inspect_page_opens_in_headless_chromium(tiny_export, tmp_path):
    proc = llm("inspect", f"model_path={tiny_export}", 'text="ROMEO.\nBut soft, what light through yonder window?"',
               f"out={tmp_path}/views", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(tmp_path / "views") in proc.stdout and (tmp_path / "views" / "logit_lens.png").exists()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium); CI installs it")
    shot = tmp_path / "shot.png"
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          "--window-size=1000,600", f"--screenshot={shot}",
                          (tmp_path / "views" / "surprisal.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.exists(), run.stderr[-2000:]
    assert "CONSOLE" not in run.stderr and "Failed to load resource" not in run.stderr  # no script, no fetch
    from PIL import Image

    pixels = list(Image.open(shot).convert("L").getdata())
    assert sum(p < 200 for p in pixels) > 0.005 * len(pixels)  # text and shading drawn, not a blank page


@pytest.mark.slow  # ~15 s
def test_the_callback_writes_the_views_at_its_interval(tiny_export, tmp_path):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM

    from lightning_llm.inference.loading import load_model
    from lightning_llm.training import CausalLMModule
    from lightning_llm.training.callbacks import InspectViews

    _, tok = load_model(tiny_export)
    config = AutoModelForCausalLM.from_pretrained(tiny_export).config
    module = CausalLMModule(vocab_size=config.vocab_size, arch="llama", config={
        "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size, "num_hidden_layers": 2,
        "num_attention_heads": config.num_attention_heads, "max_position_embeddings": 128},
        optim={"lr": 1e-3, "warmup_steps": 1})
    rows = [{"input_ids": torch.randint(0, config.vocab_size, (32,)),
             "labels": torch.randint(0, config.vocab_size, (32,))} for _ in range(16)]
    views = InspectViews(tok, "To be, or not to be", every_n_steps=2, out_dir=tmp_path / "inspect")
    trainer = L.Trainer(max_steps=4, accelerator="cpu", callbacks=[views], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(rows, batch_size=4))
    assert [p.name for p in views.written] == ["step-0000002", "step-0000004"]
    names = {p.name for p in (tmp_path / "inspect" / "step-0000004").iterdir()}
    assert {"surprisal.html", "attention.html", "logit_lens.html", "attention_layer_01.png", "logit_lens.png"} <= names
    assert module.model.training  # back to training mode


LONG = ("ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
        "Arise, fair sun, and kill the envious moon,\nWho is already sick and pale with grief.")


@pytest.mark.slow  # ~30 s; CI installs Debian's chromium first
def test_the_attention_and_lens_pages_answer_a_pointer_in_headless_chromium(tiny_export, tmp_path):
    """As a person would: open each page from file://, no console error and no request; moving the pointer onto a
    token reshades the others (attention) or shows the top guesses (lens); the screenshots show token text."""
    import io

    from PIL import Image

    from tests.integration.cdp import Chromium

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (Debian: apt-get install chromium); CI installs it")
    proc = llm("inspect", f"model_path={tiny_export}", f"text={LONG!r}", "views.tokens=24", f"out={tmp_path}/views",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the pages show the last 24 (views.tokens); the PNGs label the last 40." in proc.stdout
    chrome = Chromium(browser, tmp_path / "profile")
    try:
        attention = (tmp_path / "views" / "attention.html").as_uri()
        chrome.open(attention)
        tokens = chrome.js("[...document.querySelectorAll('#text .tok')].map(s => s.textContent)")
        assert len(tokens) == 24 and "".join(tokens).strip()  # the text, as tokens
        shade = "[...document.querySelectorAll('#text .tok')].map(s => s.style.background)"
        before, shot_before = chrome.js(shade), chrome.screenshot()
        chrome.hover('.tok[data-pos="12"]')
        after = chrome.js(shade)
        assert after != before and chrome.js("document.getElementById('who').textContent") == json.dumps(tokens[12])
        assert all(s == "transparent" for s in after[13:])  # a token attends only to itself and what came before
        assert chrome.screenshot() != shot_before
        chrome.js("document.getElementById('head').value = '0'; document.getElementById('head')"
                  ".dispatchEvent(new Event('change'))")
        assert chrome.js(shade) != after  # one head is not the mean of all
        assert chrome.problems(attention) == []

        lens = (tmp_path / "views" / "logit_lens.html").as_uri()
        chrome.events.clear()
        chrome.open(lens)
        cells = chrome.js("[...document.querySelectorAll('table.lens td')].map(td => td.textContent)")
        assert len(cells) == 24 * 2 and any(c.strip() for c in cells)  # 2 layers x 24 positions, words in cells
        assert chrome.js("getComputedStyle(document.getElementById('tip')).display") == "none"
        chrome.hover('table.lens td[data-l="1"][data-p="5"]')
        tip = chrome.js("document.getElementById('tip').textContent")
        header, *guesses = tip.split("\n")
        assert header.startswith("layer 1, after ")
        # the top 5 guesses there, one per line: "  0.4%  <token>" (a guess may itself be "%")
        assert len(guesses) == 5 and all(re.match(r"\s*\d+(\.\d+)?%\s", g) for g in guesses), tip
        shot = Image.open(io.BytesIO(chrome.screenshot())).convert("L")
        assert sum(p < 128 for p in shot.getdata()) > 0.002 * shot.width * shot.height  # text drawn, not blank
        assert chrome.problems(lens) == []
    finally:
        chrome.close()


@pytest.mark.slow  # ~10 s
def test_the_callback_logs_the_three_pages_to_wandb_as_html(tiny_export, tmp_path):
    from types import SimpleNamespace

    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from lightning_llm.inference.loading import load_model
    from lightning_llm.training.callbacks import InspectViews

    model, tok = load_model(tiny_export)

    class Recorded(WandbLogger):  # a W&B logger whose run only records what it is given
        def __init__(self):
            super().__init__(offline=True, save_dir=str(tmp_path))
            self.logged = []

        @property
        def experiment(self):
            return SimpleNamespace(log=lambda data, step=None: self.logged.append((data, step)))

    logger = Recorded()
    trainer = SimpleNamespace(global_step=2, is_global_zero=True, loggers=[logger],
                              fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=2)))
    views = InspectViews(tok, "To be, or not to be", every_n_steps=2, out_dir=tmp_path / "inspect")
    views.on_train_batch_end(trainer, SimpleNamespace(model=model), None, None, 0)
    ((data, step),) = logger.logged
    assert step == 2 and {"inspect/surprisal", "inspect/attention_page", "inspect/logit_lens_page"} <= set(data)
    for key in ("inspect/surprisal", "inspect/attention_page", "inspect/logit_lens_page"):
        assert isinstance(data[key], wandb.Html)
    assert isinstance(data["inspect/attention"], wandb.Image) and isinstance(data["inspect/logit_lens"], wandb.Image)
