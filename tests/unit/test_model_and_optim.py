import math

import pytest
import torch

from lightning_llm.errors import UserError
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.training.optim import OptimConfig, build_optimizer, param_groups
from lightning_llm.training.schedule import lr_factor
from tests.conftest import TINY_MODEL


def _model(scheme="normal", arch="llama", config=TINY_MODEL, **kw):
    return build_causal_lm(model_config(arch, dict(config), vocab_size=300), InitConfig(scheme=scheme, **kw))


def test_init_schemes_set_the_configured_spread():
    torch.manual_seed(0)
    normal = _model("normal", std=0.05)
    scaled = _model("scaled", std=0.05)
    uniform = _model("uniform", std=0.05)
    q = "model.layers.0.self_attn.q_proj.weight"
    o = "model.layers.0.self_attn.o_proj.weight"
    n = dict(normal.named_parameters())
    s = dict(scaled.named_parameters())
    u = dict(uniform.named_parameters())
    assert n[q].std().item() == pytest.approx(0.05, rel=0.1)
    assert n[o].std().item() == pytest.approx(0.05, rel=0.1)
    assert s[o].std().item() == pytest.approx(0.05 / math.sqrt(2 * 2), rel=0.1)  # 2 layers
    assert s["model.layers.0.mlp.down_proj.weight"].std().item() == pytest.approx(0.025, rel=0.1)
    assert u[q].abs().max().item() <= 0.05 * math.sqrt(3) and u[q].std().item() == pytest.approx(0.05, rel=0.1)
    assert (s["model.norm.weight"] == 1).all()


def test_any_transformers_architecture_builds_and_bad_names_are_clear():
    gpt2 = _model("scaled", arch="gpt2", config={"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64})
    assert type(gpt2).__name__ == "GPT2LMHeadModel" and gpt2.config.vocab_size == 300
    with pytest.raises(UserError, match=r"model.arch='nosuch'"):
        model_config("nosuch", {}, 300)
    with pytest.raises(UserError, match="vocab_size=100 is smaller"):
        model_config("llama", {**TINY_MODEL, "vocab_size": 100}, 300)
    with pytest.raises(UserError, match=r"init.scheme='xavier'"):
        _model("xavier")


def test_decay_groups_exclude_norms_biases_and_embeddings():
    model = _model(config={**TINY_MODEL, "tie_word_embeddings": True, "attention_bias": True})
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(n.endswith("proj.weight") for n in decay_names) and decay_names
    assert {"model.embed_tokens.weight", "model.norm.weight"} <= {names[id(p)] for p in no_decay["params"]}
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.num_parameters()


def test_schedules_warm_up_then_decay_to_the_floor():
    cos = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, 100, cos) == pytest.approx(0.1) and lr_factor(9, 100, cos) == pytest.approx(1.0)
    assert lr_factor(55, 100, cos) == pytest.approx(0.55, abs=0.01)
    assert lr_factor(100, 100, cos) == pytest.approx(0.1)
    wsd = OptimConfig(schedule="wsd", warmup_steps=10, min_lr_ratio=0.0, decay_fraction=0.2)
    assert lr_factor(79, 100, wsd) == 1.0 and lr_factor(90, 100, wsd) == pytest.approx(0.5)
    with pytest.raises(UserError, match=r"optim.schedule=.exponential."):
        build_optimizer(_model(), OptimConfig(schedule="exponential"), total_steps=50)


def test_a_run_shorter_than_its_warmup_warns_and_clamps_and_an_endless_one_needs_a_constant_schedule(caplog):
    cos = OptimConfig(schedule="cosine", warmup_steps=100)
    sched = build_optimizer(_model(), cos, total_steps=20)["lr_scheduler"]["scheduler"]
    assert "optim.warmup_steps=100 is not below the 20 training steps: warming up for 2 steps" in caplog.text
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    assert lrs[1] == pytest.approx(cos.lr) and lrs[-1] < 0.2 * cos.lr  # peak after 2 steps, then decay
    with pytest.raises(UserError, match=r"trainer.max_steps=-1 and trainer.max_epochs=-1"):
        build_optimizer(_model(), cos, total_steps=float("inf"))
    constant = build_optimizer(_model(), OptimConfig(schedule="constant", warmup_steps=5), total_steps=float("inf"))
    assert constant["lr_scheduler"]["scheduler"].factor(10**9) == 1.0


ARCHS = {  # a tiny config of each architecture the README names, and a few more
    "llama": TINY_MODEL,
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64},
    "qwen2": TINY_MODEL,
    "mistral": TINY_MODEL,
    "gpt_neox": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
    "phi3": {**TINY_MODEL, "pad_token_id": 0},
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("scheme", ["uniform", "scaled"])
def test_every_weight_matrix_of_every_architecture_follows_the_scheme(arch, scheme):
    torch.manual_seed(0)
    model = _model(scheme, arch=arch, config=ARCHS[arch], std=0.05)
    residual = InitConfig().residual_proj
    seen = 0
    for name, p in model.named_parameters():
        owner = name.split(".")[-2]
        if name.endswith("bias"):
            assert (p == 0).all(), name
        elif p.ndim >= 2:
            seen += 1
            want = 0.05 / math.sqrt(2 * 2) if scheme == "scaled" and owner in residual else 0.05
            assert p.std().item() == pytest.approx(want, rel=0.15), name
            if scheme == "uniform":
                assert p.abs().max().item() <= want * math.sqrt(3) + 1e-7, name
    assert seen >= 2 * 4 + 1  # embeddings plus at least four matrices a layer


@pytest.mark.parametrize("tied", [True, False])
def test_flops_per_token_counts_the_lm_head_once(tied):
    from lightning_llm.models.flops import flops_per_token

    model = _model("normal", config={**TINY_MODEL, "tie_word_embeddings": tied})
    cfg = model.config
    layer = 4 * 64 * 64 + 3 * 64 * 128  # q, k, v, o and the SwiGLU MLP of TINY_MODEL
    norms = (2 * 2 + 1) * 64  # counted with the parameters, as nanoGPT does
    want = 6 * (2 * layer + norms + cfg.vocab_size * 64) + 12 * 2 * 64 * 32
    assert flops_per_token(model, seq_len=32) == want
