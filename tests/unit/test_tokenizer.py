import random

from transformers import AutoTokenizer

from lightning_llm.data.tokenizer import token_byte_lengths, tokenizer_hash, train_bpe
from tests.conftest import make_document


def _texts(n=20, seed=0):
    rng = random.Random(seed)
    return [make_document(rng) for _ in range(n)] + ["Naïve café — ünïcödé ✓ 日本語"]


def test_trained_bpe_reloads_with_autotokenizer_and_roundtrips(tmp_path):
    tok = train_bpe(_texts(), vocab_size=300)
    assert len(tok) == 300 and tok.eos_token == "<|endoftext|>"
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "Thou art the king, café ✓\n  twice"
    assert again(text).input_ids == tok(text).input_ids
    assert again.decode(again(text).input_ids) == text  # byte-level: lossless
    assert tokenizer_hash(again) == tokenizer_hash(tok)
    assert tokenizer_hash(train_bpe(_texts(seed=1), vocab_size=290)) != tokenizer_hash(tok)


def test_token_byte_lengths_sum_to_the_utf8_length_of_the_text():
    tok = train_bpe(_texts(), vocab_size=300)
    lengths = token_byte_lengths(tok)
    for text in ["Naïve café — 日本語 ✓", "the king and the queen.\n\nGood night!"]:
        ids = tok(text).input_ids
        assert int(lengths[ids].sum()) == len(text.encode())
    assert lengths[tok.eos_token_id] == 0
