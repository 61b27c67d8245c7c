"""Pieces that must hold at scale, checked in one process: padded evaluation shards, the loss logged under
gradient accumulation, sampling that leaves training's randomness alone, generation in lockstep."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_llm.data.datamodule import PackedDataset, PaddedEval
from lightning_llm.data.sampling import GlobalBatchSampler, RankSampler
from lightning_llm.data.tokenizer import train_bpe
from lightning_llm.evaluation.metrics import LanguageModelMetrics, token_nats
from lightning_llm.inference.generation import generate
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.training.module import CausalLMModule
from tests.conftest import TINY_MODEL
from tests.unit.test_training_units import _counting_shard


def _dataset() -> PackedDataset:
    return PackedDataset([_counting_shard()], np.ones(300, dtype=np.uint8))


@pytest.mark.parametrize("world", [2, 3, 5])
def test_padded_rank_shards_have_equal_batches_and_count_every_token_once(world):
    torch.manual_seed(0)
    model = build_causal_lm(model_config("llama", {**TINY_MODEL, "max_position_embeddings": 32}, 300),
                            InitConfig())
    data = _dataset()
    n = 61  # an odd number of rows that no world size divides
    subset = torch.utils.data.Subset(data, range(n))

    def metrics_of(loader):
        m = LanguageModelMetrics()
        for batch in loader:
            with torch.no_grad():
                m.update(token_nats(model(input_ids=batch["input_ids"]).logits, batch["labels"]),
                         batch["label_bytes"], batch["labels"])
        return m

    whole = metrics_of(DataLoader(subset, batch_size=4)).compute()
    shards = []
    for rank in range(world):
        sampler = RankSampler(n, rank, world)
        shards.append(metrics_of(DataLoader(PaddedEval(subset, sampler.padded), batch_size=4, sampler=sampler)))
    assert len({len(DataLoader(range(RankSampler(n, r, world).padded), batch_size=4,
                               sampler=RankSampler(n, r, world))) for r in range(world)}) == 1
    total = shards[0]
    for other in shards[1:]:  # what torchmetrics' sum-reduction across processes does
        for name in ("nats", "tokens", "text_nats", "text_bytes"):
            setattr(total, name, getattr(total, name) + getattr(other, name))
    assert total.tokens.item() == n * 32
    for key, value in total.compute().items():
        assert value.item() == pytest.approx(whole[key].item(), rel=1e-6), key


def _train(batch_size: int, accumulate: int, steps: int = 3) -> list[float]:
    L.seed_everything(0, verbose=False)
    data = _dataset()
    module = CausalLMModule(300, config={**TINY_MODEL, "max_position_embeddings": 32}, optim={"warmup_steps": 1})
    logged = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if (batch_idx + 1) % accumulate == 0:
                logged.append(float(trainer.callback_metrics["train/loss"]))

    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, callbacks=[Record()],
                        accumulate_grad_batches=accumulate, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, precision="32-true")
    trainer.fit(module, DataLoader(data, batch_sampler=GlobalBatchSampler(len(data), batch_size)))
    return logged


def test_accumulated_steps_log_the_mean_loss_of_their_micro_batches():
    whole, accumulated = _train(8, 1), _train(4, 2)
    assert len(whole) == len(accumulated) == 3
    assert accumulated[0] == pytest.approx(whole[0], rel=1e-6)  # same weights, same 8 rows: the same mean
    assert accumulated == pytest.approx(whole, rel=1e-4)


def _tiny_lm():
    tok = train_bpe(["the king and the queen went to the sea and back"] * 40, 280)
    torch.manual_seed(0)
    config = model_config("llama", {**TINY_MODEL, "max_position_embeddings": 64}, len(tok), tok.eos_token_id)
    return build_causal_lm(config, InitConfig()), tok


def test_sampling_with_a_seed_leaves_the_global_random_state_alone():
    model, tok = _tiny_lm()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = generate(model, tok, ["the king"], max_new_tokens=8, seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert generate(model, tok, ["the king"], max_new_tokens=8, seed=7) == first  # and the sample is seeded


def test_lockstep_generation_runs_every_step_and_cuts_the_text_at_eos():
    model, tok = _tiny_lm()
    model.generation_config.eos_token_id = tok.eos_token_id
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    stopped_early = 0
    for seed in range(6):
        calls.clear()
        free = generate(model, tok, ["the"], max_new_tokens=12, temperature=1.5, top_k=None, seed=seed)
        free_calls = len(calls)
        calls.clear()
        locked = generate(model, tok, ["the"], max_new_tokens=12, temperature=1.5, top_k=None, seed=seed,
                          lockstep=True)
        assert locked == free and len(calls) == 12 >= free_calls
        stopped_early += free_calls < 12
    assert stopped_early  # some samples did end at EOS, and the lockstep text ended there too


def _losses_with_dropout(samples_every: int | None) -> list[float]:
    from lightning_llm.training.callbacks import TextSamples

    L.seed_everything(0, verbose=False)
    tok = train_bpe(["the king and the queen went to the sea and back"] * 40, 300)
    data = _dataset()
    module = CausalLMModule(300, config={**TINY_MODEL, "max_position_embeddings": 32, "attention_dropout": 0.2},
                            optim={"warmup_steps": 1})
    seen = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(float(outputs["loss"]))

    callbacks = [Record()] + ([TextSamples(tok, ["the king"], samples_every, max_new_tokens=4)]
                              if samples_every else [])
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, callbacks=callbacks, precision="32-true",
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(data, batch_sampler=GlobalBatchSampler(len(data), 8)))
    return seen


def test_samples_during_training_leave_the_training_losses_bit_identical():
    # dropout makes training draw random numbers: sampling must not move the generator they come from
    assert _losses_with_dropout(2) == _losses_with_dropout(None)


def test_a_process_waits_for_another_preparing_the_same_data(data_cfg, tok_cfg, tmp_path):
    from filelock import FileLock

    from lightning_llm.config import from_dict
    from lightning_llm.data import DataConfig, TokenizerConfig, prepare, prepared_dir
    from lightning_llm.errors import UserError

    data = from_dict(DataConfig, {**data_cfg, "prepare_timeout_s": 0.5}, "data")
    out = prepared_dir(data, TokenizerConfig(**tok_cfg), tmp_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{out}.lock"), pytest.raises(UserError, match=r"waited 0.5 s for another process preparing"):
        prepare(data, TokenizerConfig(**tok_cfg), tmp_path)
    assert prepare(data, TokenizerConfig(**tok_cfg), tmp_path) == out and (out / "manifest.json").exists()
