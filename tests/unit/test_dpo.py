"""Preference alignment: the pair formats, each loss against its formula written out, packed batches equal to
padded ones (loss and gradients), the reference (adapters off, frozen copy, precomputed and cached)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.tasks.config import DPOConfig
from lightning_llm.tasks.dpo_losses import preference_loss
from lightning_llm.tasks.preference_formats import to_pairs

U, A = "user", "assistant"


def _pairs(*records):
    return to_pairs((r, f"pairs.jsonl:{i + 1}") for i, r in enumerate(records))


# --- formats ---------------------------------------------------------------------------------------------------
def test_explicit_prompt_as_strings_and_as_messages():
    (p,) = _pairs({"prompt": "Who says it?", "chosen": "Hamlet", "rejected": "Horatio"})
    assert p.prompt == [{"role": U, "content": "Who says it?"}]
    assert p.chosen == [{"role": A, "content": "Hamlet"}] and p.rejected == [{"role": A, "content": "Horatio"}]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": U, "content": "Hi"}]
    (q,) = _pairs({"prompt": msgs, "chosen": [{"role": A, "content": "Hello"}], "rejected": "Go away"})
    assert q.prompt == msgs and q.rejected == [{"role": A, "content": "Go away"}]


def test_implicit_prompt_is_the_longest_shared_run_of_turns():
    convo = [{"role": U, "content": "Hi"}, {"role": A, "content": "Hello"}, {"role": U, "content": "Who?"}]
    (p,) = _pairs({"chosen": [*convo, {"role": A, "content": "Hamlet"}],
                   "rejected": [*convo, {"role": A, "content": "Nobody"}]})
    assert p.prompt == convo and p.chosen == [{"role": A, "content": "Hamlet"}]


def test_human_assistant_transcripts_are_read_as_messages():
    (p,) = _pairs({"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Simmer it for nine minutes.",
                   "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: No."})
    assert p.prompt == [{"role": U, "content": "How do I boil an egg?"}]
    assert p.chosen == [{"role": A, "content": "Simmer it for nine minutes."}]
    assert p.rejected == [{"role": A, "content": "No."}]


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": "Q", "chosen": "A"}, r"pairs.jsonl:1: no 'rejected' field"),
    ({"prompt": "Q", "chosen": "A", "rejected": "A"}, r"pairs.jsonl:1: \"chosen\" is identical to \"rejected\""),
    ({"prompt": "Q", "chosen": " ", "rejected": "B"}, r"pairs.jsonl:1: the chosen completion is empty"),
    ({"chosen": [{"role": U, "content": "Q"}, {"role": A, "content": "A"}],
      "rejected": [{"role": U, "content": "R"}, {"role": A, "content": "B"}]}, r"share no beginning"),
    ({"prompt": "Q", "chosen": [{"role": U, "content": "A"}], "rejected": "B"},
     r"pairs.jsonl:1: the chosen completion has no assistant turn"),
    ({"prompt": "Q", "chosen": 3, "rejected": "B"}, r"'chosen' must be a string or a list"),
])
def test_bad_records_are_one_line_naming_the_record(record, message):
    with pytest.raises(UserError, match=message) as e:
        _pairs(record)
    assert "\n" not in str(e.value)


# --- losses against their formulas -----------------------------------------------------------------------------
PC, PR = torch.tensor([-5.0, -9.0, -3.0]), torch.tensor([-6.0, -4.0, -3.5])
RC, RR = torch.tensor([-5.5, -8.0, -3.2]), torch.tensor([-5.0, -5.0, -3.1])
NC, NR = torch.tensor([2, 4, 1]), torch.tensor([3, 2, 5])


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("loss", ["sigmoid", "robust", "hinge", "ipo", "simpo", "orpo"])
def test_each_loss_equals_its_formula(loss):
    cfg = DPOConfig(loss=loss, beta=0.3, label_smoothing=0.1 if loss in ("sigmoid", "robust") else 0.0, gamma=0.4,
                    orpo_weight=0.2)
    got, chosen, rejected = preference_loss(cfg, PC, PR, RC, RR, NC, NR)
    b, e = cfg.beta, cfg.label_smoothing
    for i in range(3):
        pc, pr, rc, rr, nc, nr = (float(t[i]) for t in (PC, PR, RC, RR, NC, NR))
        d = (pc - rc) - (pr - rr)
        if loss == "sigmoid":
            want = -(1 - e) * math.log(_sig(b * d)) - e * math.log(_sig(-b * d))
            rewards = (b * (pc - rc), b * (pr - rr))
        elif loss == "robust":
            want = (-(1 - e) * math.log(_sig(b * d)) + e * math.log(_sig(-b * d))) / (1 - 2 * e)
            rewards = (b * (pc - rc), b * (pr - rr))
        elif loss == "hinge":
            want, rewards = max(0.0, 1 - b * d), (b * (pc - rc), b * (pr - rr))
        elif loss == "ipo":
            da = (pc / nc - rc / nc) - (pr / nr - rr / nr)
            want, rewards = (da - 1 / (2 * b)) ** 2, (b * (pc / nc - rc / nc), b * (pr / nr - rr / nr))
        elif loss == "simpo":
            want = -math.log(_sig(b * (pc / nc - pr / nr) - cfg.gamma))
            rewards = (b * pc / nc, b * pr / nr)
        else:
            mc, mr = pc / nc, pr / nr
            odds = math.log(math.exp(mc) / (1 - math.exp(mc))) - math.log(math.exp(mr) / (1 - math.exp(mr)))
            want = -mc - cfg.orpo_weight * math.log(_sig(odds))
            rewards = (cfg.orpo_weight * mc, cfg.orpo_weight * mr)
        assert float(got[i]) == pytest.approx(want, rel=1e-5)
        assert (float(chosen[i]), float(rejected[i])) == pytest.approx(rewards, rel=1e-5)


@pytest.mark.parametrize("loss", ["sigmoid", "simpo"])
def test_sft_weight_adds_the_chosen_mean_token_nll(loss):
    plain, _, _ = preference_loss(DPOConfig(loss=loss), PC, PR, RC, RR, NC, NR)
    with_sft, _, _ = preference_loss(DPOConfig(loss=loss, sft_weight=0.5), PC, PR, RC, RR, NC, NR)
    torch.testing.assert_close(with_sft, plain + 0.5 * (-PC / NC))
    with pytest.raises(UserError, match=r"orpo has its own SFT term"):
        DPOConfig(loss="orpo", sft_weight=0.5)


def test_a_bad_loss_name_or_beta_is_one_line():
    with pytest.raises(UserError, match=r"dpo.loss='kto': choose one of"):
        DPOConfig(loss="kto")
    with pytest.raises(UserError, match=r"dpo.beta=0"):
        DPOConfig(beta=0)


# --- encoding, packing ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    import random

    rng = random.Random(0)
    words = ["king", "queen", "lord", "lady", "good", "night", "love", "sword", "crown", "fair"]
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    with path.open("w") as f:
        for _ in range(40):
            p = " ".join(rng.choice(words) for _ in range(rng.randint(2, 12)))
            f.write(json.dumps({"prompt": f"Praise {p}", "chosen": "good " + p,
                                "rejected": " ".join(["sword"] * rng.randint(1, 9))}) + "\n")
    return path


def _datamodule(tiny_export, pairs_file, **data):
    from lightning_llm.tasks.preference_data import PreferenceDataModule

    dm = PreferenceDataModule({"data_files": {"train": str(pairs_file)}, "seq_len": 64, "batch_size": 4, **data},
                              tiny_export)
    dm.setup("fit")
    return dm


def test_only_the_completion_and_its_end_of_turn_carry_labels(tiny_export, pairs_file):
    dm = _datamodule(tiny_export, pairs_file)
    tok = dm.tokenizer
    pair = dm.datasets["train"].pairs[0]
    for ids, labels in (pair.chosen, pair.rejected):
        learned = labels[labels != IGNORE]
        assert learned[-1] == tok.eos_token_id  # our template ends a turn with EOS
        assert "Praise" not in tok.decode(learned) and tok.decode(ids).startswith("User: Praise")
        first = int(np.argmax(labels != IGNORE))
        assert (labels[first:] != IGNORE).all()  # the completion is one run of labels to the end
    # chosen and rejected share every prompt token
    n = int(np.argmax(pair.chosen[1] != IGNORE))
    assert np.array_equal(pair.chosen[0][:n + 1], pair.rejected[0][:n + 1])


def test_long_pairs_are_cut_or_dropped_and_counted(tiny_export, tmp_path, caplog):
    long = " ".join(["king"] * 40)
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Praise the lord", "chosen": "good lord", "rejected": "sword"},  # fits
        {"prompt": f"Praise {long}", "chosen": "good king", "rejected": "sword"},  # a long prompt: cut
        {"prompt": "Praise the king", "chosen": long, "rejected": "sword"},  # a long completion: dropped
    ]) + "\n")
    files = {s: str(path) for s in ("train", "validation", "test")}
    with caplog.at_level("WARNING", logger="lightning_llm"):
        dm = _datamodule(tiny_export, path, data_files=files, seq_len=24)
    assert dm.stats["train"] == {**dm.stats["train"], "pairs": 3, "kept": 2, "prompt_cut": 1,
                                 "dropped_completion_too_long": 1}
    assert "train: 2 of 3 pairs are longer than data.seq_len=24: 1 had the beginning of their prompt cut" in caplog.text
    cut = dm.datasets["train"].pairs[1]
    assert len(cut.chosen[0]) == 24 and (cut.chosen[1] != IGNORE).sum() > 0


def _grads_and_values(module, batch):
    module.zero_grad(set_to_none=True)
    values = module.pair_values(batch)
    values["loss"].mean().backward()
    grads = {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}
    return values, grads


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_packed_pairs_give_the_loss_and_gradients_of_padded_ones(tiny_export, pairs_file, precision):
    from lightning_llm.tasks.dpo_module import DPOModule
    from lightning_llm.tasks.preference_data import PairCollate

    torch.manual_seed(0)
    module = DPOModule(str(tiny_export), {"loss": "sigmoid"}, lora={"r": 0})
    with torch.no_grad():  # a trained-looking policy, away from the reference, so gradients are not tiny
        for p in module.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    dm = _datamodule(tiny_export, pairs_file)
    items = [dm.datasets["train"][i] for i in range(8)]
    packed = PairCollate(dm.datasets["train"], 64, dm.tokenizer.eos_token_id, packed=True)(items)
    padded = PairCollate(dm.datasets["train"], 64, dm.tokenizer.eos_token_id, packed=False)(items)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0] == 16  # fewer rows
    bf16 = precision == "bf16-mixed"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        a, ga = _grads_and_values(module, packed)
        b, gb = _grads_and_values(module, padded)
    tol = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-5, "atol": 1e-5}
    for k in ("loss", "logps/chosen", "logps/rejected"):
        torch.testing.assert_close(a[k], b[k], **tol)
    assert ga.keys() == gb.keys() and len(ga) > 0
    for name in ga:
        scale = gb[name].abs().max().clamp(min=1e-6)
        assert ((ga[name] - gb[name]).abs().max() / scale) < (5e-2 if bf16 else 1e-4), name


def test_the_fused_head_gives_the_plain_logits_log_probs(tiny_export, pairs_file):
    from lightning_llm.models.pretrained import load_causal_lm
    from lightning_llm.tasks.dpo_module import sequence_logps
    from lightning_llm.tasks.preference_data import PairCollate

    model = load_causal_lm(tiny_export)
    dm = _datamodule(tiny_export, pairs_file)
    batch = PairCollate(dm.datasets["train"], 64, 0, packed=True)([dm.datasets["train"][i] for i in range(4)])
    fused, n1 = sequence_logps(model, batch, fused=True)
    plain, n2 = sequence_logps(model, batch, fused=False)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-4)
    assert torch.equal(n1, n2) and (n1 > 0).all()


# --- the reference -----------------------------------------------------------------------------------------------
def test_under_lora_the_reference_is_the_base_with_adapters_off(tiny_export, pairs_file):
    from lightning_llm.models.pretrained import load_causal_lm
    from lightning_llm.tasks.dpo_module import DPOModule, sequence_logps
    from lightning_llm.tasks.preference_data import PairCollate

    module = DPOModule(str(tiny_export), {"loss": "sigmoid"}, lora={"r": 4, "alpha": 8})
    assert module._frozen_reference is None  # no second copy
    with torch.no_grad():  # trained adapters: the policy now differs from the base
        for n, p in module.model.named_parameters():
            if "lora_B" in n:
                p.add_(torch.randn_like(p) * 0.5)
    dm = _datamodule(tiny_export, pairs_file)
    batch = PairCollate(dm.datasets["train"], 64, 0, packed=True)([dm.datasets["train"][i] for i in range(4)])
    base = sequence_logps(load_causal_lm(tiny_export), batch)[0]
    torch.testing.assert_close(module.reference_logps(batch), base, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(module.policy_logps(batch)[0], base, atol=1e-3)


def test_full_fine_tuning_keeps_a_frozen_copy_outside_checkpoints(tiny_export):
    from lightning_llm.tasks.dpo_module import DPOModule

    module = DPOModule(str(tiny_export), {"loss": "sigmoid"}, lora={"r": 0})
    ref = module._frozen_reference
    assert ref is not None and not any(p.requires_grad for p in ref.parameters())
    assert not any(k.startswith("_frozen") for k in module.state_dict())
    assert DPOModule(str(tiny_export), {"loss": "simpo"}, lora={"r": 0})._frozen_reference is None  # reference-free
    pre = DPOModule(str(tiny_export), {"loss": "sigmoid", "precompute_reference": True}, lora={"r": 0})
    assert pre._frozen_reference is None


def test_precomputed_reference_is_cached_by_base_and_data(tiny_export, pairs_file, tmp_path, monkeypatch):
    import shutil

    from lightning_llm.tasks.dpo_module import DPOModule
    from lightning_llm.tasks.reference import precompute_reference

    monkeypatch.setenv("LIGHTNING_LLM_CACHE", str(tmp_path / "cache"))
    module = DPOModule(str(tiny_export), {"loss": "sigmoid", "precompute_reference": True}, lora={"r": 0})
    dm = _datamodule(tiny_export, pairs_file)
    files = precompute_reference(module, dm, tiny_export)
    first = {s: dm.datasets[s].reference.copy() for s in dm.datasets}
    batch = next(iter(dm.eval_dataloader("test")))
    live = module.reference_logps(batch).view(-1, 2)
    torch.testing.assert_close(batch["reference_logps"], live, rtol=1e-5, atol=1e-4)  # rows in the batch's order

    stamp = {s: f.stat().st_mtime_ns for s, f in files.items()}
    dm2 = _datamodule(tiny_export, pairs_file)
    assert precompute_reference(module, dm2, tiny_export) == files  # reused: the same files, not rewritten
    assert {s: f.stat().st_mtime_ns for s, f in files.items()} == stamp
    assert all(np.array_equal(dm2.datasets[s].reference, first[s]) for s in first)

    other = tmp_path / "other-base"  # another base (changed weights): computed anew
    shutil.copytree(tiny_export, other)
    from lightning_llm.models.pretrained import load_causal_lm

    changed = load_causal_lm(other)
    with torch.no_grad():
        next(changed.parameters()).add_(0.1)
    changed.save_pretrained(other)
    assert set(precompute_reference(module, _datamodule(tiny_export, pairs_file), other).values()).isdisjoint(
        files.values())


def test_a_search_maximizes_the_recipes_metric_from_metrics_json():
    from omegaconf import OmegaConf

    from lightning_llm.cli._app import RECIPES_DIR

    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from lightning_llm.training.sweep import direction_for, objective

    metric = OmegaConf.load(RECIPES_DIR / "dpo.yaml").optimized_metric
    assert metric == "val/rewards/accuracy" and direction_for(metric) == "maximize"
    assert objective({"val": {"rewards/accuracy": 0.75, "loss": 0.6}}, metric) == 0.75
