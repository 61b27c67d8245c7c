"""Energy accounting: the CPU-time estimate, RAPL counters (with wraparound), and the `perf/*` energy values a
training run logs."""

from __future__ import annotations

import time

import pytest
import torch

from lightning_llm.training.callbacks.energy import EnergyMeter


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def test_without_counters_energy_is_cpu_time_times_watts_per_core(tmp_path):
    meter = EnergyMeter(torch.device("cpu"), watts_per_core=12.5, powercap=tmp_path)  # no RAPL domains
    assert meter.source == "estimate: CPU time x 12.5 W per core"
    meter.start()
    before = time.process_time()
    _burn(0.2)
    assert meter.joules() == pytest.approx((time.process_time() - before) * 12.5, rel=0.05)


def test_rapl_package_counters_are_summed_and_unwrapped(tmp_path):
    for name, energy in (("intel-rapl:0", 1_000_000), ("intel-rapl:1", 5_000_000), ("intel-rapl:0:0", 7)):
        d = tmp_path / name
        d.mkdir()
        (d / "energy_uj").write_text(str(energy))
        (d / "max_energy_range_uj").write_text("10000000")
    meter = EnergyMeter(torch.device("cpu"), powercap=tmp_path)
    assert meter.source.startswith("rapl")
    meter.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3000000")  # +2 J
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("1000000")  # wrapped: +6 J
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("9999999")  # a sub-domain: inside package 0
    assert meter.joules() == pytest.approx(8.0)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("4000000")  # +1 J
    assert meter.joules() == pytest.approx(9.0)


def test_a_run_logs_its_energy_per_token(tmp_path):
    import csv

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from lightning_llm.training import CausalLMModule
    from lightning_llm.training.callbacks import ThroughputMFU

    rows = [{"input_ids": torch.randint(0, 64, (16,)), "labels": torch.randint(0, 64, (16,))} for _ in range(40)]
    module = CausalLMModule(vocab_size=64, arch="llama", config={
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "max_position_embeddings": 8192}, optim={"lr": 1e-3, "warmup_steps": 1})  # a real base's context
    meter = ThroughputMFU(every_n_steps=5, watts_per_core=10.0, grid_co2_g_per_kwh=500.0)
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = L.Trainer(max_steps=10, accelerator="cpu", callbacks=[meter], logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        log_every_n_steps=1)
    trainer.fit(module, DataLoader(rows, batch_size=4))
    logged = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    # every 5 optimizer steps, at the step Lightning logs that batch's train/loss at (k - 1)
    assert [int(r["step"]) for r in logged if r.get("perf/energy_j")] == [4, 9]
    assert {int(r["step"]) for r in logged if r.get("train/loss")} >= {4, 9}
    perf = meter.last
    assert perf["perf/energy_j"] > 0 and perf["perf/energy_kwh"] == pytest.approx(perf["perf/energy_j"] / 3.6e6)
    assert perf["perf/tokens_per_j"] == pytest.approx(10 * 4 * 16 / perf["perf/energy_j"])
    assert perf["perf/co2_g"] == pytest.approx(perf["perf/energy_kwh"] * 500.0)
    from lightning_llm.models.flops import flops_per_token

    # MFU's attention FLOPs follow the rows trained (16 tokens), not the model's 8,192-token context
    assert meter._flops_per_token == flops_per_token(module.model, 16) < flops_per_token(module.model, 8192) / 2
