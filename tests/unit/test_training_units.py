"""Precision, activation checkpointing, compile, multirun guard, checkpoint errors: the small pieces."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.errors import UserError
from lightning_llm.training.checkpointing import resolve_resume
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.parallel import check_multirun
from tests.conftest import TINY_MODEL


def _counting_shard() -> Path:
    """Rows that count up (mod 300) from random starts: learnable in a few steps."""
    starts = np.random.default_rng(0).integers(0, 300, (64, 1))
    path = Path(tempfile.mkdtemp()) / "count-00000.npy"
    np.save(path, ((starts + np.arange(33)) % 300).astype(np.uint16))
    return path


def _fit(steps: int = 4, precision: str = "32-true", callbacks: tuple = (), clip: float | None = None,
         **module_kwargs) -> tuple[CausalLMModule, list[float]]:
    L.seed_everything(0, verbose=False)
    dataset = PackedDataset([_counting_shard()], np.ones(300, dtype=np.uint8))
    module = CausalLMModule(300, config={**TINY_MODEL, "max_position_embeddings": 32},
                            optim={"warmup_steps": 1}, **module_kwargs)
    seen = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(float(outputs["loss"]))

    trainer = L.Trainer(max_steps=steps, accelerator="cpu", precision=precision, logger=False,
                        callbacks=[Record(), *callbacks], gradient_clip_val=clip, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), 8)))
    return module, seen


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true", "16-mixed"])
def test_each_precision_trains_on_cpu(precision):
    module, losses = _fit(precision=precision)
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    expected = torch.bfloat16 if precision == "bf16-true" else torch.float32
    assert next(module.model.parameters()).dtype == expected


class GradNormAtStep(L.Callback):
    """The total gradient norm the optimizer steps on: after Lightning's unscaling and clipping."""

    def __init__(self):
        self.norms: list[float] = []
        self.fused: list[bool] = []

    def on_train_start(self, trainer, pl_module):
        self.fused.append(bool(trainer.optimizers[0].defaults.get("fused")))
        clip = pl_module.configure_gradient_clipping

        def clip_then_record(optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            clip(optimizer, gradient_clip_val, gradient_clip_algorithm)
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
            self.norms.append(float(torch.linalg.vector_norm(norms)))

        pl_module.configure_gradient_clipping = clip_then_record


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_fused_adamw_steps_on_clipped_gradients_under_every_precision(precision):
    # Lightning's MixedPrecision refused to clip for a fused AdamW (it claims to unscale inside its kernel)
    probe = GradNormAtStep()
    _, losses = _fit(precision=precision, callbacks=(probe,), clip=0.05)
    assert probe.fused == [True] and len(probe.norms) == 4 and all(np.isfinite(losses))
    assert max(probe.norms) <= 0.05 * 1.01  # every step clipped (the raw norms here are ~1-3)
    _fit(precision=precision, callbacks=(probe,), clip=None)
    assert max(probe.norms[4:]) > 0.5


def test_activation_checkpointing_gives_the_same_losses():
    plain, a = _fit()
    checkpointed, b = _fit(activation_checkpointing=True)
    assert checkpointed.model.is_gradient_checkpointing and not plain.model.is_gradient_checkpointing
    assert b == pytest.approx(a, rel=1e-5)


@pytest.mark.slow
def test_compile_gives_the_same_losses_and_plain_parameter_names():
    _, a = _fit()
    compiled, b = _fit(compile=True)
    assert b == pytest.approx(a, rel=1e-3)
    assert not any("_orig_mod" in k for k in compiled.state_dict())


def test_multirun_with_a_multi_process_strategy_fails_up_front(monkeypatch):
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME", "LOCAL_RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    check_multirun(True, "auto", 1)
    check_multirun(False, object(), 2)
    with pytest.raises(UserError, match=r"multirun \(-m\) with a multi-process strategy is not supported"):
        check_multirun(True, object(), 2)


def test_resume_arguments_are_checked(tmp_path):
    assert resolve_resume("auto", None, tmp_path) is None  # nothing to resume: a fresh run
    with pytest.raises(UserError, match="either resume=auto or ckpt_path"):
        resolve_resume("auto", "x.ckpt", tmp_path)
    with pytest.raises(UserError, match="resume='yes'"):
        resolve_resume("yes", None, tmp_path)
    (tmp_path / "bad.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match=r"bad.ckpt is unreadable .*resume=auto"):
        resolve_resume(None, str(tmp_path / "bad.ckpt"), tmp_path)


def test_gpu_benchmark_script_runs_in_smoke_mode():
    from benchmarks.gpu_llama_1b import main

    rows = main(["--smoke"])
    assert rows[0]["tokens_per_s"] > 0 and 0 < rows[0]["mfu"] < 1


def test_samples_every_0_steps_means_never_during_training():
    from types import SimpleNamespace

    from lightning_llm.training.callbacks.evaluation import _due

    trainer = SimpleNamespace(global_step=500, is_global_zero=True)
    assert not _due(trainer, 0, None)  # samples.every_n_steps=0 was a ZeroDivisionError
    assert _due(trainer, 500, None) and not _due(trainer, 500, 500)


def test_csv_rows_are_buffered_and_on_disk_at_every_checkpoint(tmp_path):
    import csv

    from lightning.pytorch.callbacks import ModelCheckpoint

    from lightning_llm.training.tracking import AppendingCSVLogger, FlushLogsAtCheckpoints

    L.seed_everything(0, verbose=False)
    dataset = PackedDataset([_counting_shard()], np.ones(300, dtype=np.uint8))
    module = CausalLMModule(300, config={**TINY_MODEL, "max_position_embeddings": 32}, optim={"warmup_steps": 1})
    logger = AppendingCSVLogger(tmp_path, name="csv", version="", flush_logs_every_n_steps=1000)
    metrics = Path(logger.log_dir) / "metrics.csv"
    on_disk = {}  # checkpoint step -> train/loss steps in metrics.csv when that checkpoint was written

    class Look(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            rows = list(csv.DictReader(metrics.open())) if metrics.exists() else []
            on_disk[trainer.global_step] = sorted(int(r["step"]) for r in rows if r.get("train/loss"))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 2:
                on_disk["before any checkpoint"] = metrics.exists()  # rows wait in memory: no file per step

    # FlushLogsAtCheckpoints before Look: Lightning calls callbacks' on_save_checkpoint in order
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=logger, log_every_n_steps=1,
                        callbacks=[ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=3),
                                   FlushLogsAtCheckpoints(), Look()],
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), 8)))
    # the loss of optimizer step k is logged at Lightning's step k - 1, after the checkpoint of step k
    assert on_disk == {"before any checkpoint": False, 3: [0, 1], 6: [0, 1, 2, 3, 4]}
    rows = list(csv.DictReader(metrics.open()))
    assert sorted(int(r["step"]) for r in rows if r.get("train/loss")) == list(range(6))  # finalize wrote the rest
