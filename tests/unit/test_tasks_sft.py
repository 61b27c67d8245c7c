"""Instruction fine-tuning: chat format, labels from positions, packing without leaks, the step-mean loss,
LoRA, generation metrics and bad input."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lightning_llm.data.chat import generation_prompt, segments, with_chat_template
from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.tasks.formats import Example, to_examples
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.tasks.records import read_local
from lightning_llm.tasks.sft_data import SFTDataModule, StepTokenSampler, encode, pack, shift

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is the king?"},
        {"role": "assistant", "content": "The good king."}, {"role": "user", "content": "And the queen?"},
        {"role": "assistant", "content": "The fair queen."}]


def ex(prompt: str, response: str) -> Example:
    return Example([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], [response])


def test_training_text_is_what_the_shipped_chat_template_renders(tiny_export):
    tok = with_chat_template(AutoTokenizer.from_pretrained(tiny_export))
    rendered = tok.apply_chat_template(CHAT, tokenize=False)
    ours = "".join(t + (tok.eos_token if resp else "") for t, resp in segments(CHAT))
    assert rendered == ours
    with_prompt = tok.apply_chat_template(CHAT[:4], tokenize=False, add_generation_prompt=True)
    assert with_prompt == generation_prompt(CHAT[:4], tok.eos_token)


def test_labels_come_from_positions_so_the_eos_is_learned(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    assert tok.pad_token_id == tok.eos_token_id  # the pitfall: masking pad would mask every EOS
    ids, learn = encode(ex("Who is the king?", "The good king."), tok)
    e, _ = shift(ids, learn, 64)
    learned = e.labels[e.labels != IGNORE]
    assert learned[-1] == tok.eos_token_id
    assert tok.decode(learned[:-1]).strip() == "The good king."
    assert (e.labels[: len(tok("User: Who is the king?\nAssistant:").input_ids) - 1] == IGNORE).all()
    # multi-turn: both answers and both EOS are learned, nothing of the prompts
    ids, learn = encode(Example(CHAT, []), tok)
    e, _ = shift(ids, learn, 128)
    assert (e.labels == tok.eos_token_id).sum() == 2
    assert tok.decode(e.labels[e.labels != IGNORE]).replace(tok.eos_token, "|") == " The good king.| The fair queen.|"


def test_train_on_prompt_learns_every_token(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    e, _ = shift(*encode(ex("Who?", "The king."), tok, train_on_prompt=True), 64)
    assert (e.labels != IGNORE).all()


def _examples(tok, n=12, seed=0):
    rng = np.random.default_rng(seed)
    words = ["king", "queen", "good", "night", "love", "sword", "crown", "fair"]
    out = []
    for _ in range(n):
        prompt = " ".join(rng.choice(words, rng.integers(2, 8)))
        response = " ".join(rng.choice(words, rng.integers(1, 6)))
        out.append(shift(*encode(ex(prompt, response), tok), 64)[0])
    return out


def test_packing_keeps_each_example_whole_and_labels_inside_it(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    examples = _examples(tok, 20)
    rows = pack(examples, 64, tok.eos_token_id)
    assert len(rows["input_ids"]) < len(examples)  # several per row
    found = 0
    for r in range(len(rows["input_ids"])):
        starts = [*np.flatnonzero(rows["position_ids"][r] == 0), 64]
        for a, b in itertools.pairwise(starts):
            ids, labels = rows["input_ids"][r, a:b], rows["labels"][r, a:b]
            match = [e for e in examples
                     if len(e.input_ids) == b - a and (e.input_ids == ids).all() and (e.labels == labels).all()]
            found += bool(match)
            assert match or (rows["labels"][r, a:b] == IGNORE).all()  # an example, or padding
    assert found == len(examples)
    assert sum((e.labels != IGNORE).sum() for e in examples) == (rows["labels"] != IGNORE).sum()


def test_packed_logits_equal_separate_passes_and_a_2d_mask_would_leak(tiny_export):
    tok = AutoTokenizer.from_pretrained(tiny_export)
    model = AutoModelForCausalLM.from_pretrained(tiny_export, attn_implementation="sdpa").eval()
    examples = _examples(tok, 6, seed=1)
    rows = pack(examples, 64, tok.eos_token_id)
    ids, pos = torch.tensor(rows["input_ids"][:1], dtype=torch.long), torch.tensor(rows["position_ids"][:1],
                                                                                   dtype=torch.long)
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0]
        leaky = model(input_ids=ids, position_ids=pos, attention_mask=torch.ones_like(ids), use_cache=False).logits[0]
        starts = list(np.flatnonzero(rows["position_ids"][0] == 0))
        second = slice(int(starts[1]), int(starts[2]) if len(starts) > 2 else 64)
        alone = model(input_ids=ids[:, second]).logits[0]
    assert torch.allclose(packed[second], alone, atol=1e-5)
    assert not torch.allclose(leaky[second], alone, atol=1e-3)  # an all-ones mask switches the document mask off


def test_step_token_sampler_sends_the_label_count_of_the_whole_step():
    counts = np.arange(1, 33)
    one = list(StepTokenSampler(counts, batch_size=8, seed=3))
    accumulated = list(StepTokenSampler(counts, batch_size=4, seed=3, accumulate=2))
    ranks = [list(StepTokenSampler(counts, batch_size=2, rank=r, world_size=2, seed=3, accumulate=2)) for r in (0, 1)]
    for step, batch in enumerate(one):
        total = sum(int(counts[i]) for i, _ in batch)
        assert {t for _, t in batch} == {total}
        micro = accumulated[2 * step] + accumulated[2 * step + 1]
        assert sorted(i for i, _ in micro) == sorted(i for i, _ in batch) and {t for _, t in micro} == {total}
        per_rank = [x for r in ranks for x in r[2 * step] + r[2 * step + 1]]
        assert sorted(i for i, _ in per_rank) == sorted(i for i, _ in batch) and {t for _, t in per_rank} == {total}


def test_loss_is_the_mean_over_the_steps_response_tokens_with_or_without_accumulation(tiny_export, tmp_path):
    """Gradients of one batch of 8 rows equal those of 2 accumulated micro-batches of 4 (same rows)."""
    import lightning as L

    from lightning_llm.tasks.sft_module import SFTModule

    data = tmp_path / "train.jsonl"
    rng = np.random.default_rng(0)
    words = ["king", "queen", "good", "night", "love", "sword", "crown", "fair"]
    data.write_text("".join(json.dumps({"prompt": " ".join(rng.choice(words, 3)),
                                        "response": " ".join(rng.choice(words, rng.integers(1, 12)))}) + "\n"
                            for _ in range(60)))
    grads = {}

    class Grab(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads[trainer.accumulate_grad_batches] = torch.cat([p.grad.flatten() for p in pl_module.parameters()
                                                                 if p.grad is not None]).clone()
            grads[f"loss{trainer.accumulate_grad_batches}"] = torch.stack(pl_module._step_values["loss"]).mean()

    for batch, accumulate in ((8, 1), (4, 2)):
        dm = SFTDataModule({"data_files": {"train": str(data)}, "seq_len": 32, "batch_size": batch, "pack": False},
                           tiny_export, seed=0)
        torch.manual_seed(0)
        module = SFTModule(str(tiny_export), optim={"warmup_steps": 0})
        L.Trainer(max_steps=1, accumulate_grad_batches=accumulate, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, limit_val_batches=0, callbacks=[Grab()], accelerator="cpu",
                  use_distributed_sampler=False, gradient_clip_val=None).fit(module, datamodule=dm)
    assert torch.allclose(grads[1], grads[2], atol=1e-6, rtol=1e-4)
    assert torch.allclose(grads["loss1"], grads["loss2"], atol=1e-6)


def test_lora_trains_only_adapters_and_the_merged_export_gives_the_same_logits(tiny_export, tmp_path):
    pytest.importorskip("peft")
    from lightning_llm.export import export_hf
    from lightning_llm.tasks.sft_module import SFTModule

    module = SFTModule(str(tiny_export), lora={"r": 4})
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # adapters start at zero: make them matter
        for n, p in module.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        unmerged = module(ids)
    export_hf(module.merged_model(), AutoTokenizer.from_pretrained(tiny_export), tmp_path / "export")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, unmerged, atol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(tiny_export)(input_ids=ids).logits
    assert not torch.allclose(base, unmerged, atol=1e-3)


def test_lora_without_peft_is_a_one_line_error(tiny_export, monkeypatch):
    from lightning_llm.tasks.sft_module import SFTModule

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError, match=r"lora.r>0 needs peft, which lightning_llm depends on: pip install peft"):
        SFTModule(str(tiny_export), lora={"r": 4})


def test_generation_metrics():
    s = score(["squad", "bleu", "chrf", "rouge"], ["the good king", "a queen"],
              [["the good king", "good king"], ["the fair queen"]])
    assert s["exact_match"] == pytest.approx(50.0)
    assert 50 < s["f1"] < 100
    perfect = score(["bleu", "chrf", "rouge"], ["the good king of the land"], [["the good king of the land"]])
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100)
    assert perfect["rouge1"] == pytest.approx(100) and perfect["rougeL"] == pytest.approx(100)
    with pytest.raises(UserError, match="unknown"):
        score(["meteor"], ["a"], [["a"]])


@pytest.mark.parametrize(("fmt", "record", "user", "response"), [
    ("prompt_response", {"prompt": "Hi", "response": "Hello"}, "Hi", "Hello"),
    ("alpaca", {"instruction": "Add", "input": "1 1", "output": "2"}, "Add\n\n1 1", "2"),
    ("squad", {"context": "C", "question": "Q?", "answers": {"text": ["A", "B"], "answer_start": [0, 0]}},
     "C\nQuestion: Q?", "A"),
    ("translation", {"translation": {"en": "king", "es": "rey"}}, "Translate to es: king", "rey"),
    ("pair", {"dialogue": "long", "summary": "short"}, "long", "short"),
])
def test_formats(fmt, record, user, response):
    cmap = {"source": "dialogue", "target": "summary"} if fmt == "pair" else None
    (e,) = to_examples([(record, "f:1")], fmt, cmap)
    assert e.messages[-2] == {"role": "user", "content": user} and e.response == response


def test_a_record_without_the_needed_fields_names_its_line(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps({"question": "a"}) + "\n")
    with pytest.raises(UserError, match=r"train.jsonl:2: data.format=prompt_response needs the field\(s\)"):
        to_examples(read_local([f]), "prompt_response")
    f.write_text("{not json\n")
    with pytest.raises(UserError, match=r"train.jsonl:1: not valid JSON"):
        list(read_local([f]))


def test_long_examples_are_truncated_from_the_left_and_counted(tiny_export, tmp_path, caplog):
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps({"prompt": "king " * (60 if i % 4 == 0 else 2), "response": "queen"}) + "\n"
                         for i in range(40)))
    dm = SFTDataModule({"data_files": {"train": str(f)}, "seq_len": 32, "batch_size": 2}, tiny_export, seed=0)
    with caplog.at_level("WARNING"):
        dm.setup()
    truncated = sum(s["truncated"] for s in dm.stats.values())
    assert truncated == 10 and "left truncation" in caplog.text
    assert all(s["dropped"] == 0 for s in dm.stats.values())


def test_a_base_model_that_is_not_a_causal_lm_is_refused(tiny_export, tmp_path):
    from transformers import AutoModelForTokenClassification

    from lightning_llm.models.pretrained import load_causal_lm

    AutoModelForTokenClassification.from_pretrained(tiny_export, num_labels=3).save_pretrained(tmp_path / "ner")
    with pytest.raises(UserError, match="not a causal LM"):
        load_causal_lm(tmp_path / "ner")
    with pytest.raises(UserError, match=r"no config\.json"):
        load_causal_lm(tmp_path)
    with pytest.raises(UserError, match="give init_from=<model>"):
        load_causal_lm(None)


def test_init_from_resolves_folders_and_names_what_it_cannot_use(tiny_export, tmp_path):
    from lightning_llm.cli._continued import check_init_from_overrides
    from lightning_llm.models.pretrained import resolve_model

    assert resolve_model(tiny_export) == tiny_export
    with pytest.raises(UserError, match=r"init_from=org/no-such-model: could not get it from the Hugging Face hub "
                                        r".*needs a network"):
        resolve_model("org/no-such-model")  # the suite runs with HF_HUB_OFFLINE=1
    with pytest.raises(UserError, match=r"no such \.gguf file"):
        resolve_model(tmp_path / "model.gguf")
    with pytest.raises(UserError, match=r"not a model folder, a \.gguf file, a hub id"):
        resolve_model(tmp_path / "a" / "b" / "c")
    check_init_from_overrides("X", tiny_export, ["model.config.hidden_size=64", "trainer.max_steps=5",
                                                 "model.compile=true"])  # agrees with the base / not a model key
    for bad, hint in [("model.config.hidden_size=32", r"\(it has hidden_size=64\)"), ("tokenizer.vocab_size=300", ""),
                      ("model=gpt2", ""), ("model.init.scheme=normal", "")]:
        with pytest.raises(UserError, match=rf"{bad} contradicts init_from=X, which brings its own arch.*{hint}"):
            check_init_from_overrides("X", tiny_export, [bad])


def test_a_pretraining_module_from_init_from_holds_the_base_and_its_checkpoint_rebuilds_it(tiny_export, tmp_path):
    from safetensors.torch import load_file

    from lightning_llm.inference.checkpoint import model_from_checkpoint
    from lightning_llm.training.module import CausalLMModule

    module = CausalLMModule(300, arch="gpt2", config={"n_layer": 1}, init_from=str(tiny_export))
    base = load_file(tiny_export / "model.safetensors")
    state = module.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in base.items())  # its weights, not the arch/config given
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": {f"model.{k}": v for k, v in state.items()}},
               tmp_path / "x.ckpt")
    rebuilt = model_from_checkpoint(tmp_path / "x.ckpt")  # from the checkpoint alone, no init_from folder needed
    same = {"dtype": None, "architectures": None}
    assert rebuilt.config.to_diff_dict() | same == module.model.config.to_diff_dict() | same
    with pytest.raises(UserError, match="the data's tokenizer has 5000 tokens, the model 400"):
        CausalLMModule(5000, init_from=str(tiny_export))
