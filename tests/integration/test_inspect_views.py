"""llm-inspect end to end: the page opens in a real browser (headless Chromium) with no console errors and
draws something; the training callback writes the views at its interval."""

from __future__ import annotations

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
    assert {"surprisal.html", "attention_layer_01.png", "logit_lens.png"} <= names
    assert module.model.training  # back to training mode
