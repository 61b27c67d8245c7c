"""A base model's own chat template (SmolLM2's real tokenizer: ChatML): training text and token ids equal
`apply_chat_template`'s, labels cover each answer and its `<|im_end|>`, generation stops there, the export keeps
the template and stops there too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from lightning_llm.data.chat import CHAT_TEMPLATE, end_of_turn_id, has_own_template, template_segments
from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.tasks.formats import Example
from lightning_llm.tasks.sft_data import SFTDataModule, encode, shift

SMOLLM2_TOKENIZER = Path(__file__).resolve().parents[1] / "data" / "smollm2-135m-instruct-tokenizer"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is the king?"},
        {"role": "assistant", "content": "The good king."}, {"role": "user", "content": "And the queen?"},
        {"role": "assistant", "content": "The fair queen."}]


@pytest.fixture(scope="module")
def tok():
    """SmolLM2's tokenizer with the base model's EOS (<|endoftext|>): the end of turn is then another token."""
    t = AutoTokenizer.from_pretrained(SMOLLM2_TOKENIZER)
    t.eos_token = "<|endoftext|>"
    return t


@pytest.fixture(scope="module")
def tiny_smol(tok, tmp_path_factory) -> Path:
    """A tiny random Llama over SmolLM2's vocabulary and tokenizer, saved as an HF folder."""
    folder = tmp_path_factory.mktemp("tiny-smol")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_pieces_and_token_ids_are_what_apply_chat_template_renders(tok):
    assert has_own_template(tok) and tok.chat_template != CHAT_TEMPLATE
    for messages in (CHAT[1:3], CHAT, CHAT[1:]):  # with SmolLM2's default system prompt, and with ours
        pieces = template_segments(messages, tok)
        assert "".join(t for t, _ in pieces) == tok.apply_chat_template(messages, tokenize=False)
        ids, _ = encode(Example(messages, []), tok)
        assert ids == tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]


def test_labels_cover_each_answer_and_its_end_of_turn_token_only(tok):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_id(tok) == im_end != tok.eos_token_id
    e, _ = shift(*encode(Example(CHAT, []), tok), 256)
    learned = e.labels[e.labels != IGNORE]
    assert tok.decode(learned) == "The good king.<|im_end|>The fair queen.<|im_end|>"
    assert (learned == im_end).sum() == 2 and tok.eos_token_id not in learned.tolist()
    # the prompt, the turn headers and the newline after <|im_end|> are not learned
    text_ids = tok.apply_chat_template(CHAT, tokenize=True, return_dict=True)["input_ids"]
    first_answer = tok.apply_chat_template(CHAT[:2], tokenize=True, add_generation_prompt=True,
                                           return_dict=True)["input_ids"]
    assert (e.labels[: len(first_answer) - 1] == IGNORE).all() and len(e.input_ids) == len(text_ids) - 1


def test_a_template_that_rewrites_earlier_turns_is_one_clear_line(tok, tmp_path):
    odd = AutoTokenizer.from_pretrained(SMOLLM2_TOKENIZER)
    # a template that shows only the last assistant turn in full (as reasoning templates drop earlier thoughts)
    odd.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}A: ...\n"
                         "{% else %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(ValueError, match="renders earlier turns differently"):
        template_segments(CHAT, odd)
    odd.save_pretrained(tmp_path / "odd")
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": CHAT}) + "\n" for _ in range(12)))
    dm = SFTDataModule({"data_files": {"train": str(data)}, "format": "messages", "seq_len": 128}, tmp_path / "odd")
    with pytest.raises(UserError, match=r"example 1 .*renders earlier turns differently"):
        dm.setup("fit")


def _always_end_of_turn(folder: Path, token_id: int):
    """The tiny model with a head that always predicts `token_id`."""
    from lightning_llm.models.pretrained import load_causal_lm

    model = load_causal_lm(folder)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 10.0
    model.lm_head = head
    return model.eval()


def test_generation_stops_at_the_end_of_turn_and_the_export_keeps_template_and_stop(tok, tiny_smol, tmp_path):
    from lightning_llm.export import export_hf
    from lightning_llm.tasks.gen_eval import answer

    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model = _always_end_of_turn(tiny_smol, im_end)
    assert answer(model, tok, [Example(CHAT[1:3], ["The good king."])], max_new_tokens=8) == [""]

    export_hf(model, tok, tmp_path / "export", max_length=256)
    saved = AutoTokenizer.from_pretrained(tmp_path / "export")
    assert saved.chat_template == tok.chat_template  # the base's template, not ours
    generation = GenerationConfig.from_pretrained(tmp_path / "export")
    assert set(generation.eos_token_id) == {im_end, tok.eos_token_id}
    ids = saved.apply_chat_template(CHAT[1:2], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, generation_config=generation, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 1 and out[0, -1] == im_end
