"""The fused LM-head cross-entropy gives the plain path's loss and gradients, without its logits."""

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

from lightning_llm.data.config import IGNORE
from lightning_llm.evaluation.metrics import token_nats
from lightning_llm.training.fused_loss import decoder_and_head, linear_cross_entropy_sum

SMALL = {"vocab_size": 300, "num_hidden_layers": 2, "num_attention_heads": 4}


def _model(kind: str, tied: bool):
    if kind == "gpt2":
        config = GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0,
                            embd_pdrop=0, attn_pdrop=0, tie_word_embeddings=tied)
    else:
        cls = LlamaConfig if kind == "llama" else Qwen2Config
        config = cls(**SMALL, hidden_size=32, intermediate_size=64, num_key_value_heads=2,
                     max_position_embeddings=64, tie_word_embeddings=tied)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 300, (3, 16), generator=g)
    labels = torch.randint(0, 300, (3, 16), generator=g)
    labels[0, :5] = IGNORE  # a prompt
    labels[2, 10:] = IGNORE  # a row's padding
    pos = torch.cat([torch.arange(7), torch.arange(9)]).repeat(3, 1)  # two packed examples per row
    return ids, pos, labels


def _loss_and_grads(model, fused: bool, bf16: bool):
    ids, pos, labels = _batch()
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if fused:
            decoder, head = decoder_and_head(model)
            hidden = decoder(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state
            loss = linear_cross_entropy_sum(hidden, head.weight, labels)
        else:
            loss = token_nats(model(input_ids=ids, position_ids=pos, use_cache=False).logits, labels).sum()
    (loss / 40).backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind,tied", [("llama", True), ("llama", False), ("qwen2", False), ("gpt2", True)])
@pytest.mark.parametrize("bf16", [False, True])
def test_the_fused_loss_and_gradients_are_the_plain_ones(kind, tied, bf16):
    model = _model(kind, tied)
    plain, g_plain = _loss_and_grads(model, fused=False, bf16=bf16)
    fused, g_fused = _loss_and_grads(model, fused=True, bf16=bf16)
    tol = 2e-2 if bf16 else 1e-5
    assert torch.allclose(fused, plain, rtol=tol / 10 if bf16 else 1e-6)
    assert g_fused.keys() == g_plain.keys()
    for name in g_plain:
        scale = g_plain[name].abs().max().clamp(min=1e-8)
        assert (g_fused[name] - g_plain[name]).abs().max() / scale < tol, name


def test_chunks_sum_to_the_whole(monkeypatch):
    import lightning_llm.training.fused_loss as fl

    model = _model("llama", True)
    whole, g_whole = _loss_and_grads(model, fused=True, bf16=False)
    monkeypatch.setattr(fl, "CHUNK_LOGITS", 300 * 5)  # 5 tokens a chunk, the last one shorter
    chunked, g_chunked = _loss_and_grads(model, fused=True, bf16=False)
    assert torch.allclose(chunked, whole, rtol=1e-6)
    assert all(torch.allclose(g_chunked[n], g_whole[n], atol=1e-7) for n in g_whole)


def test_a_frozen_head_gets_no_gradient_and_lora_keeps_the_fused_path():
    from lightning_llm.tasks.config import LoraConfig
    from lightning_llm.tasks.lora import add_lora

    model = add_lora(_model("llama", True), LoraConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear"))
    assert decoder_and_head(model) is not None
    _, g_plain = _loss_and_grads(model, fused=False, bf16=False)
    _, g_fused = _loss_and_grads(model, fused=True, bf16=False)
    assert g_fused.keys() == g_plain.keys() and all("lora" in n for n in g_fused)
    assert all(torch.allclose(g_fused[n], g_plain[n], rtol=1e-4, atol=1e-7) for n in g_plain)


def test_heads_that_are_more_than_a_matmul_keep_the_plain_path():
    from transformers import Gemma2Config

    gemma = AutoModelForCausalLM.from_config(Gemma2Config(**SMALL, hidden_size=32, intermediate_size=64,
                                                          num_key_value_heads=2, head_dim=8))
    assert decoder_and_head(gemma) is None  # soft-capped logits


def test_the_training_losses_take_the_fused_path_and_keep_their_values():
    from lightning_llm.training.module import CausalLMModule

    module = CausalLMModule(vocab_size=300, config={"hidden_size": 32, "intermediate_size": 64,
                                                    "num_hidden_layers": 2, "num_attention_heads": 4,
                                                    "num_key_value_heads": 2, "max_position_embeddings": 64})
    ids, pos, labels = _batch()
    batch = {"input_ids": ids, "position_ids": pos, "labels": labels}
    assert module._decoder_and_head() is not None
    loss, _ = module.training_loss(batch)
    assert torch.allclose(loss, module.token_nats(batch).mean(), rtol=1e-6)
    module._compiled = object()  # a compiled model trains through its own graph: the plain path
    module.train()
    assert module._decoder_and_head() is None
