import io
import itertools
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_llm.errors import UserError
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.muon import MuonWithAdamW, muon_split
from lightning_llm.training.optim import OptimConfig, build_optimizer
from lightning_llm.training.schedule import WarmupDecayLR, budget_factor, decay_shape
from tests.conftest import TINY_MODEL


def _model():
    return build_causal_lm(model_config("llama", dict(TINY_MODEL), vocab_size=64), InitConfig())


class FakeClock:
    """A budget whose time advances by `dt` seconds per optimizer step."""

    def __init__(self, budget: float, dt: float):
        self.budget, self.dt, self.steps = budget, dt, 0

    @property
    def now(self) -> float:
        return self.steps * self.dt

    def __call__(self) -> tuple[float, float]:
        return self.now, self.budget


@pytest.mark.parametrize("schedule", ["cosine", "linear", "wsd"])
def test_a_time_budgeted_schedule_trains_its_last_step_at_the_floor(schedule, monkeypatch):
    cfg = OptimConfig(schedule=schedule, warmup_steps=5, min_lr_ratio=0.1, decay_fraction=0.2)
    clock = FakeClock(budget=10.0, dt=0.1)  # 100 steps fit; the Trainer knows only max_steps=1000
    ticks = iter(range(10**6))
    monkeypatch.setattr("lightning_llm.training.schedule.time.monotonic", lambda: next(ticks) * clock.dt)
    opt = torch.optim.SGD(_model().parameters(), lr=1.0)
    sched = WarmupDecayLR(opt, cfg, total_steps=1000, clock=clock)
    lrs = []
    while clock.now < clock.budget:  # Lightning's Timer stops the run once the budget is spent
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        clock.steps += 1
        sched.step()
    assert len(lrs) == 100
    assert lrs[4] == pytest.approx(decay_shape(schedule, 0.05, 0.1, 0.2), rel=1e-6)  # warmed up after 5 steps
    assert lrs[-1] == pytest.approx(0.1, rel=0.05)  # the last step trains at the floor, not 1000 steps early
    assert max(lrs[:-1]) <= 1.0 and all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs[5:]))


def test_the_budget_schedule_follows_the_steps_when_they_end_first_and_its_state_loads_weights_only():
    cfg = OptimConfig(schedule="cosine", warmup_steps=0, min_lr_ratio=0.0)
    clock = FakeClock(budget=1e9, dt=0.0)
    opt = torch.optim.SGD(_model().parameters(), lr=1.0)
    sched = WarmupDecayLR(opt, cfg, total_steps=10, clock=clock)
    for _ in range(9):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # step 10 of 10: the floor
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["last_epoch"] == 9 and "clock" not in state and "cfg" not in state
    assert budget_factor(0, 0.0, OptimConfig(warmup_steps=4)) == pytest.approx(0.25)


def test_schedule_by_time_needs_a_budget_and_an_endless_run_with_one_may_decay():
    cfg = OptimConfig(schedule="cosine", schedule_by="time")
    with pytest.raises(UserError, match=r"trainer.max_time"):
        build_optimizer(_model(), cfg, total_steps=100)
    sched = build_optimizer(_model(), OptimConfig(), math.inf, clock=lambda: (0.0, 60.0))["lr_scheduler"]
    assert sched["scheduler"].clock is not None
    steps = build_optimizer(_model(), OptimConfig(schedule_by="steps"), 100, clock=lambda: (0.0, 60.0))
    assert steps["lr_scheduler"]["scheduler"].clock is None  # the fixed-steps schedule, budget or not


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = _model()
    names = {id(p): n for n, p in model.named_parameters()}
    hidden, rest = muon_split(model)
    assert {names[id(p)].rsplit(".", 2)[-2] for p in hidden} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                                  "gate_proj", "up_proj", "down_proj"}
    assert {"model.embed_tokens.weight", "model.norm.weight"} <= {names[id(p)] for p in rest}
    assert len(hidden) + len(rest) == len(list(model.parameters()))


def test_muon_with_adamw_steps_both_and_its_state_round_trips_with_the_schedule_still_attached():
    cfg = OptimConfig(name="muon", warmup_steps=0, schedule="linear", min_lr_ratio=0.0)
    model = _model()
    built = build_optimizer(model, cfg, total_steps=4)
    opt, sched = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert isinstance(opt, MuonWithAdamW)
    assert opt.param_groups[0]["lr"] == cfg.muon.lr and opt.param_groups[-1]["lr"] == cfg.lr
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randint(0, 64, (2, 16))
    loss = opt.step(lambda: model(input_ids=x, labels=x).loss.backward() or torch.tensor(1.0))
    assert loss.item() == 1.0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    sched.step()
    state = opt.state_dict()
    fresh = build_optimizer(model, cfg, total_steps=4)
    fresh["optimizer"].load_state_dict(state)
    fresh["lr_scheduler"]["scheduler"].load_state_dict(sched.state_dict())
    fresh["lr_scheduler"]["scheduler"].step()  # must reach the inner optimizers' (reloaded) groups
    assert fresh["optimizer"].muon.param_groups[0]["lr"] == pytest.approx(cfg.muon.lr * 0.5)
    assert fresh["optimizer"].adamw.param_groups[0]["lr"] == pytest.approx(cfg.lr * 0.5)
    assert fresh["optimizer"].muon.state  # momentum buffers carried over


def test_a_trainer_with_max_time_decays_to_the_floor_within_its_budget(tmp_path):
    module = CausalLMModule(64, config=TINY_MODEL, optim={"warmup_steps": 2, "min_lr_ratio": 0.1})
    data = torch.randint(0, 64, (4000, 17))
    loader = DataLoader([{"input_ids": r[:-1], "labels": r[1:]} for r in data], batch_size=4)
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(max_time={"seconds": 3}, max_steps=10**6, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[Record()], default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=loader)
    assert 10 < len(lrs) < 1000 and max(lrs) == pytest.approx(3e-3, rel=0.05)
    assert lrs[-1] == pytest.approx(3e-4, rel=0.05)  # within 5% of the floor


def test_muon_refuses_a_sharded_strategy():
    module = CausalLMModule(64, config=TINY_MODEL, optim={"name": "muon"})

    class Trainer:
        strategy = type("FSDPStrategy", (), {})()

    module._trainer = Trainer()  # what configure_optimizers reads
    with pytest.raises(UserError, match=r"optim=muon is not supported with a sharded strategy"):
        module.configure_optimizers()


def test_muon_in_fp32_takes_the_step_torch_muon_takes_in_bf16():
    from lightning_llm.training.muon import Muon

    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(48, 16)), torch.nn.Parameter(torch.randn(16, 48))]
    twins = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    ours = Muon(weights, lr=0.02, weight_decay=0.1, ns_dtype="fp32")
    torch_muon = torch.optim.Muon(twins, lr=0.02, weight_decay=0.1)
    for _ in range(3):
        for w, t in zip(weights, twins, strict=True):
            w.grad = torch.randn_like(w)
            t.grad = w.grad.clone()
        ours.step()
        torch_muon.step()
    for w, t in zip(weights, twins, strict=True):
        moved = (t - torch.zeros_like(t)).abs().mean()
        assert torch.allclose(w, t, atol=0.01 * moved.item())  # bf16's rounding apart, the same update
    assert ours._fp32() and Muon(twins, ns_dtype="bf16")._fp32() is False
