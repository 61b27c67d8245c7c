"""Document masking for pretraining: position ids restart at every EOS, so a packed document attends only to
itself; the packed row's logits equal each document's own forward pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lightning_llm.data.datamodule import PackedDataset, document_positions
from lightning_llm.training.module import CausalLMModule

EOS = 0


def test_positions_restart_at_every_eos_which_begins_the_next_document():
    row = np.array([5, 6, 7, EOS, 8, 9, EOS, EOS, 4])
    assert document_positions(row, EOS).tolist() == [0, 1, 2, 0, 1, 2, 0, 0, 1]


@pytest.fixture()
def packed(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 64, n) for n in (9, 14, 5, 30)]
    stream = np.concatenate([np.concatenate([d, [EOS]]) for d in docs])[:33]  # a row of 32 inputs + its last label
    np.save(tmp_path / "shard.npy", stream[None].astype(np.uint16))
    dataset = PackedDataset([tmp_path / "shard.npy"], np.ones(64, dtype=np.int64), eos_id=EOS)
    module = CausalLMModule(vocab_size=64, config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                                   "num_attention_heads": 4, "num_key_value_heads": 2,
                                                   "max_position_embeddings": 64}).eval()
    return dataset, module


def _segments(input_ids: torch.Tensor) -> list[tuple[int, int]]:
    cuts = [0, *[i for i in range(1, len(input_ids)) if input_ids[i] == EOS], len(input_ids)]
    return list(itertools.pairwise(cuts))


@torch.no_grad()
def test_packed_logits_equal_each_documents_own_forward_pass(packed):
    dataset, module = packed
    item = dataset[0]
    assert "attention_mask" not in item  # a 2D mask would switch the per-document mask off (next test)
    batch = {k: v[None] for k, v in item.items()}
    logits = module(batch["input_ids"], batch["position_ids"])[0]
    segments = _segments(item["input_ids"])
    assert len(segments) == 4
    for a, b in segments:
        alone = module(item["input_ids"][None, a:b])[0]
        torch.testing.assert_close(logits[a:b], alone, atol=1e-5, rtol=0)
    # the training loss (fused LM head + cross-entropy) sees the same documents
    per_doc = sum(torch.nn.functional.cross_entropy(module(item["input_ids"][None, a:b])[0], item["labels"][a:b],
                                                    reduction="sum") for a, b in segments)
    torch.testing.assert_close(module.nats_sum(batch), per_doc, atol=1e-4, rtol=1e-5)


@torch.no_grad()
def test_a_2d_attention_mask_would_let_documents_see_each_other(packed):
    """Why no mask may sneak back in: given one (all ones), transformers attends across the documents."""
    dataset, module = packed
    item = dataset[0]
    a, b = _segments(item["input_ids"])[1]
    masked = module.model(input_ids=item["input_ids"][None], position_ids=item["position_ids"][None],
                          attention_mask=torch.ones(1, len(item["input_ids"]), dtype=torch.long)).logits[0]
    alone = module(item["input_ids"][None, a:b])[0]
    assert (masked[a:b] - alone).abs().max() > 1e-3


def test_without_document_masking_the_rows_carry_no_position_ids(packed, tmp_path):
    dataset, _ = packed
    plain = PackedDataset(dataset.shards and [tmp_path / "shard.npy"], np.ones(64, dtype=np.int64))
    assert set(plain[0]) == {"input_ids", "labels", "label_bytes"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["32-true", "bf16-mixed"])
@torch.no_grad()
def test_another_documents_tokens_change_nothing_of_a_documents_logits(packed, dtype):
    """Under either precision (bf16 as Lightning's bf16-mixed autocasts it): rewriting every token of the other
    documents of a row leaves a document's logits bit for bit as they were (masked keys weigh exactly 0)."""
    dataset, module = packed
    item = dataset[0]
    segments = _segments(item["input_ids"])
    a, b = segments[2]
    other = item["input_ids"].clone()
    keep = torch.zeros_like(other, dtype=torch.bool)
    keep[a:b] = True
    other[~keep & (other != EOS)] = (other[~keep & (other != EOS)] % 60) + 3  # other tokens, the same boundaries
    assert (other != item["input_ids"]).any()
    with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        before = module(item["input_ids"][None], item["position_ids"][None])[0]
        after = module(other[None], item["position_ids"][None])[0]
    assert before.dtype == dtype or dtype == torch.float32
    assert torch.equal(before[a:b], after[a:b])
    assert not torch.equal(before[:a], after[:a])  # the rewritten documents' own logits did change
