"""Fine-tuning defaults by the base's size (`auto`) and the forgetting report (reference bits per byte)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

from lightning_llm.data.tokenizer import token_byte_lengths
from lightning_llm.errors import UserError
from lightning_llm.tasks import forgetting
from lightning_llm.tasks.defaults import count_parameters, resolve_auto

TABLE = {"large_from": 50e6,
         "small": {"lora_r": 0, "lora_alpha": 16, "lr": 1e-3, "lora_lr": 1e-3, "warmup_steps": 20,
                   "max_steps": 700, "batch_size": 8},
         "large": {"lora_r": 16, "lora_alpha": 32, "lr": 2e-5, "lora_lr": 2e-4, "warmup_steps": 10,
                   "max_steps": 100, "batch_size": 8}}


def recipe(**given):
    cfg = OmegaConf.create({"optim": {"lr": "auto", "warmup_steps": "auto"}, "lora": {"r": "auto", "alpha": "auto"},
                            "trainer": {"max_steps": "auto"}, "data": {"batch_size": "auto"},
                            "finetune": {"auto": TABLE}})
    for key, value in given.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return cfg


def test_auto_keys_take_the_table_of_the_bases_size():
    small, large = recipe(), recipe()
    resolve_auto(small, 4_400_000)
    resolve_auto(large, 134_515_008)
    assert (small.lora.r, small.optim.lr, small.trainer.max_steps, small.optim.warmup_steps) == (0, 1e-3, 700, 20)
    assert (large.lora.r, large.lora.alpha, large.optim.lr, large.trainer.max_steps) == (16, 32, 2e-4, 100)


def test_a_key_given_by_the_user_wins_and_full_fine_tuning_of_a_large_base_gets_the_full_lr():
    cfg = recipe(lora__r=0, trainer__max_steps=40)
    chosen = resolve_auto(cfg, 134_515_008)
    assert cfg.lora.r == 0 and cfg.optim.lr == 2e-5 and cfg.trainer.max_steps == 40
    assert "lora.r" not in chosen and "trainer.max_steps" not in chosen
    cfg = recipe(optim__lr=5e-5)
    resolve_auto(cfg, 134_515_008)
    assert cfg.optim.lr == 5e-5 and cfg.lora.r == 16


def test_auto_without_a_table_or_with_an_unknown_key_is_one_line():
    cfg = OmegaConf.create({"optim": {"lr": "auto"}, "finetune": {}})
    with pytest.raises(UserError, match=r"optim.lr=auto needs a finetune.auto table"):
        resolve_auto(cfg, 1000)
    cfg = recipe(finetune__auto__small__lr_max=1.0)
    with pytest.raises(UserError, match=r"finetune.auto.small: unknown key\(s\) \['lr_max'\]"):
        resolve_auto(cfg, 1000)


def test_parameters_are_counted_without_loading_and_equal_the_loaded_models(tiny_export):
    model = AutoModelForCausalLM.from_pretrained(tiny_export)
    assert count_parameters(tiny_export) == sum(p.numel() for p in model.parameters())


def test_reference_bpb_scores_every_token_after_the_first_once_whatever_the_window(tiny_export, corpus_dir):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    model = AutoModelForCausalLM.from_pretrained(tiny_export)
    text, where = forgetting.reference_text(str(corpus_dir / "*.txt"), 400)
    assert len(text.encode()) <= 400 and str(corpus_dir) in where
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert 40 < len(ids) < 128  # within the tiny model's context: one window is a plain pass
    lengths = token_byte_lengths(tok)
    whole = forgetting.bits_per_byte(model, tok, text, seq_len=128)  # one window: a plain pass
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    nats = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
    assert whole["bytes"] == int(lengths[ids[1:]].sum())
    assert whole["bpb"] == pytest.approx(nats / whole["bytes"] / math.log(2), rel=1e-5)
    for seq_len, batch in ((16, 1), (16, 3), (33, 4)):
        windowed = forgetting.bits_per_byte(model, tok, text, seq_len=seq_len, batch_size=batch)
        assert windowed["bytes"] == whole["bytes"]  # each token once, padding never counted
        assert windowed["bpb"] > whole["bpb"] * 0.95  # less context at each window's start: no better
    again = forgetting.bits_per_byte(model, tok, text, seq_len=16, batch_size=1)
    assert again["bpb"] == pytest.approx(forgetting.bits_per_byte(model, tok, text, 16, 3)["bpb"], rel=1e-5)


def test_the_report_warns_above_its_threshold(caplog):
    with caplog.at_level(logging.WARNING, logger="lightning_llm"):
        calm = forgetting.report({"bpb": 1.0, "bytes": 10}, {"bpb": 1.04, "bytes": 10}, "x", 0.05)
        assert not calm["warned"] and not caplog.records
        worse = forgetting.report({"bpb": 1.0, "bytes": 10}, {"bpb": 1.3, "bytes": 10}, "x", 0.05)
    assert worse["warned"] and worse["change"] == pytest.approx(0.3)
    assert "rose 30.0%" in caplog.text and "finetune.forgetting.warn_above" in caplog.text
    assert "WARNING" in forgetting.closing_line(worse) and "+30.0%" in forgetting.closing_line(worse)


def test_a_token_classifier_is_scored_through_the_bases_head_on_its_own_backbone(tiny_export):
    tagger = AutoModelForTokenClassification.from_pretrained(tiny_export, num_labels=3)
    with torch.no_grad():
        tagger.model.layers[0].mlp.down_proj.weight.mul_(0.5)  # as fine-tuning would move the backbone
    lm = forgetting.language_model_view(tagger, tiny_export)
    assert torch.equal(lm.model.layers[0].mlp.down_proj.weight, tagger.model.layers[0].mlp.down_proj.weight)
    base = AutoModelForCausalLM.from_pretrained(tiny_export)
    assert forgetting.language_model_view(base, tiny_export) is base


def test_the_default_reference_is_the_plays_the_task_data_hold_out(tmp_path, monkeypatch):
    from lightning_llm.tasks import sources

    plays = []
    for name in (f"play{i}_gut" for i in range(30)):
        p = tmp_path / f"{name}.txt"
        p.write_text(f"{name} THE PERSONS\nKING.\n\nACT I\n" + f"{name} speaks. " * 40)
        plays.append(p)
    monkeypatch.setattr(sources, "_modern_plays", lambda: plays)
    held = [p.stem for p in plays if sources._bucket(p.stem, 0.1, 0.1) == "test"]
    text, where = forgetting.reference_text(None, 4000)
    assert held and all(name.removesuffix("_gut") in where for name in held)
    assert "THE PERSONS" not in text and len(text.encode()) <= 4000
    assert all(f"{name} speaks" in text for name in held)
    assert not any(f"{p.stem} speaks" in text for p in plays if p.stem not in held)


def test_a_missing_or_foreign_reference_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"finetune.forgetting.files: .*nope.txt does not exist"):
        forgetting.reference_text(str(tmp_path / "nope.txt"), 100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.txt is not UTF-8"):
        forgetting.reference_text(str(tmp_path / "latin1.txt"), 100)


# what the recipes trained every base with before `auto`: the small row must reproduce them
BEFORE = {"qa": (1e-3, 0, 700, 8, 20), "translate": (1e-3, 0, 500, 8, 20), "summarize": (1e-3, 0, 500, 8, 20),
          "sft": (1e-3, 0, 500, 8, 20), "ner": (1e-3, 0, 1200, 32, 20)}


@pytest.mark.parametrize("recipe", sorted(BEFORE))
def test_the_recipes_resolve_to_their_old_numbers_for_a_small_base_and_to_lora_for_a_real_one(recipe):
    from hydra import compose, initialize_config_dir

    from lightning_llm.cli._app import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        small = compose("train", overrides=[f"recipe={recipe}"])
        large = compose("train", overrides=[f"recipe={recipe}"])
        full = compose("train", overrides=[f"recipe={recipe}", "lora.r=0"])
    resolve_auto(small, 4_400_000)
    resolve_auto(large, 134_515_008)
    resolve_auto(full, 134_515_008)
    got = (small.optim.lr, small.lora.r, small.trainer.max_steps, small.data.batch_size, small.optim.warmup_steps)
    assert got == BEFORE[recipe]
    if recipe == "ner":  # no LoRA for token classification: full fine-tuning, gently
        assert (large.optim.lr, large.lora.r, large.trainer.max_steps) == (1e-4, 0, 150)
    else:
        assert (large.optim.lr, large.lora.r, large.lora.alpha, large.trainer.max_steps) == (2e-4, 16, 32, 60)
        assert (full.optim.lr, full.lora.r) == (2e-5, 0)
