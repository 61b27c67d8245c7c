"""Looking inside: the logit lens ends at the model's own logits, attention rows are distributions, the
surprisal page adds up to llm-eval's loss, and bad input is one line."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from lightning_llm.errors import UserError
from lightning_llm.evaluation.inspect import (
    attention_entropy,
    attention_maps,
    inspect_text,
    logit_lens,
    surprisal,
    surprisal_page,
)
from lightning_llm.inference.loading import load_model

TEXT = "ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east."


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_export):
    return load_model(tiny_export)


def test_logit_lens_at_the_last_layer_is_the_models_own_logits(model_and_tokenizer):
    model, tok = model_and_tokenizer
    lens = logit_lens(model, tok, TEXT)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    logits = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    assert lens.shape == (model.config.num_hidden_layers, len(ids), logits.shape[-1])
    torch.testing.assert_close(lens[-1], logits, atol=1e-5, rtol=0)
    assert not torch.allclose(lens[0], logits, atol=1e-3)  # earlier layers are read through the norm, not equal


def test_attention_maps_are_causal_distributions(model_and_tokenizer):
    model, tok = model_and_tokenizer
    maps = attention_maps(model, tok, TEXT)
    layers, heads, n, _ = maps.shape
    assert layers == model.config.num_hidden_layers and heads == model.config.num_attention_heads
    torch.testing.assert_close(maps.sum(-1), torch.ones(layers, heads, n), atol=1e-5, rtol=0)
    assert maps.triu(diagonal=1).abs().max() < 1e-6  # nothing attends to later tokens
    entropy = attention_entropy(maps)
    assert entropy.shape == (layers, heads) and (entropy >= 0).all() and (entropy <= math.log2(n) + 1e-4).all()


def test_surprisal_totals_equal_llm_evals_loss_on_the_same_text(model_and_tokenizer):
    from lightning_llm.evaluation.text import evaluate_text

    model, tok = model_and_tokenizer
    tokens = surprisal(model, tok, TEXT, top_k=3)
    assert "".join(t.text for t in tokens) == tok.decode(tok(TEXT, add_special_tokens=False)["input_ids"])
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    labels = torch.tensor([ids[1:]])
    batch = {"input_ids": torch.tensor([ids[:-1]]), "labels": labels,
             "label_bytes": torch.tensor([[len(tok.decode([i]).encode()) for i in ids[1:]]])}
    metrics = evaluate_text(model, [batch])
    bits = [t.bits for t in tokens[1:]]
    assert sum(bits) * math.log(2) / len(bits) == pytest.approx(metrics["loss"], rel=1e-5)
    assert tokens[0].bits is None and all(len(t.top) == 3 for t in tokens[1:])


def test_the_page_is_self_contained_with_a_total_per_line(model_and_tokenizer):
    model, tok = model_and_tokenizer
    page = surprisal_page(surprisal(model, tok, TEXT), "Surprisal <test>")
    assert "<script" not in page and "http" not in page and "<link" not in page  # nothing fetched, no code
    assert page.count('class="total"') == TEXT.count("\n") + 1 and "Surprisal &lt;test&gt;" in page


def test_inspect_writes_every_view_and_refuses_bad_input_in_one_line(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    written = inspect_text(model, tok, TEXT, tmp_path)
    names = {p.name for p in written.values()}
    assert {"surprisal.html", "attention_entropy.json", "logit_lens.png", "logit_lens.json"} <= names
    assert sum(n.startswith("attention_layer_") for n in names) == model.config.num_hidden_layers
    with pytest.raises(UserError, match="empty text"):
        surprisal(model, tok, "  \n")
    with pytest.raises(UserError, match="longer than the model's context of 128"):
        surprisal(model, tok, "word " * 400)
    from lightning_llm.cli.inspect import inspect

    cfg = OmegaConf.create({"model_path": "x", "text": "a", "text_file": "b", "out": None, "top_k": 5, "maps": True})
    with pytest.raises(UserError, match="not both"):
        inspect(cfg)
    onnx = tmp_path / "onnx-export"  # a folder without attention outputs
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(b"")
    cfg = OmegaConf.create({"model_path": str(onnx), "text": "a", "text_file": None, "out": None, "top_k": 5,
                            "maps": True})
    with pytest.raises(UserError, match="is an ONNX export"):
        inspect(cfg)


def _page_data(path) -> dict:
    import json
    import re

    text = path.read_text(encoding="utf-8")
    assert "http" not in text.split("<script>", 1)[1] and "src=" not in text  # nothing fetched
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1)
                      .replace("<\\/", "</"))


def test_the_pages_numbers_are_the_library_functions(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    written = inspect_text(model, tok, TEXT, tmp_path, top_k=3, view_tokens=12)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    start = len(ids) - 12
    maps, lens = attention_maps(model, tok, TEXT), logit_lens(model, tok, TEXT)
    att = _page_data(written["attention_page"])
    assert att["offset"] == start and len(att["tokens"]) == 12 and att["layers"] == list(range(maps.shape[0]))
    for layer in range(maps.shape[0]):
        for h in range(maps.shape[1]):
            for q in range(12):  # each shown query over the shown positions up to itself, and what lies before
                row = torch.tensor(att["attention"][layer][h][q])
                torch.testing.assert_close(row, maps[layer, h, start + q, start:start + q + 1], atol=1e-6, rtol=0)
                assert att["before"][layer][h][q] == pytest.approx(float(maps[layer, h, start + q, :start].sum()),
                                                                   abs=1e-6)
    torch.testing.assert_close(torch.tensor(att["entropy_bits"]), attention_entropy(maps), atol=1e-6, rtol=0)
    lens_page_data = _page_data(written["logit_lens_page"])
    probs, top = lens[:, start:].exp().topk(3, dim=-1)
    for layer in range(lens.shape[0]):
        for p in range(12):
            cell = lens_page_data["cells"][layer][p]
            assert [t for t, _ in cell] == [tok.decode([int(i)]) for i in top[layer, p]]
            torch.testing.assert_close(torch.tensor([x for _, x in cell]), probs[layer, p], atol=1e-6, rtol=0)
            true_next = ids[start + p + 1] if start + p + 1 < len(ids) else None
            assert lens_page_data["hit"][layer][p] == (true_next is not None and int(top[layer, p, 0]) == true_next)
    assert lens_page_data["next"][-1] is None and lens_page_data["tokens"] == [tok.decode([i]) for i in ids[start:]]


def test_the_pages_take_a_layer_range_and_refuse_one_outside_the_model(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    last = model.config.num_hidden_layers - 1
    written = inspect_text(model, tok, TEXT, tmp_path / "a", layers=[-1], view_layers=[-1])
    assert _page_data(written["attention_page"])["layers"] == [last]
    assert sorted(p.name for p in (tmp_path / "a").glob("attention_layer_*.png")) == [f"attention_layer_{last:02d}.png"]
    for where in ({"view_layers": [99]}, {"layers": [99]}):
        with pytest.raises(UserError, match=r"views.layers=\[99\]: the model has layers 0\.\."):
            inspect_text(model, tok, TEXT, tmp_path / "b", **where)
