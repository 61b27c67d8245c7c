"""Energy of a run: NVIDIA's energy counter on GPUs, RAPL on CPUs whose kernel exposes it, otherwise an
estimate from the CPU time the process used times a power per core (labelled as an estimate)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

POWERCAP = Path("/sys/class/powercap")


class EnergyMeter:
    """Joules used since `start()`, by the best source available: `source` names it."""

    def __init__(self, device: torch.device, watts_per_core: float = 10.0, powercap: Path = POWERCAP):
        self.source, self._read = _pick(device, watts_per_core, powercap)
        self._origin = 0.0

    def start(self) -> None:
        self._origin = self._read()

    def joules(self) -> float:
        return self._read() - self._origin


def _pick(device: torch.device, watts_per_core: float, powercap: Path) -> tuple[str, Callable[[], float]]:
    if device.type == "cuda" and (nvml := _nvml(device)) is not None:
        return "nvml: the GPU's energy counter", nvml
    if (rapl := _rapl(powercap)) is not None:
        return "rapl: the CPU packages' energy counters (all processes on them)", rapl
    return (f"estimate: CPU time x {watts_per_core:g} W per core",
            lambda: time.process_time() * watts_per_core)


def _nvml(device: torch.device) -> Callable[[], float] | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # millijoules; absent before Volta
    except Exception:
        return None
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000


def _rapl(powercap: Path) -> Callable[[], float] | None:
    """The package domains (intel-rapl:N, not their sub-domains), their counters unwrapped."""
    domains = sorted(d for d in powercap.glob("intel-rapl:*") if d.name.count(":") == 1)
    readable = []
    for d in domains:
        try:
            int((d / "energy_uj").read_text())
            readable.append((d / "energy_uj", int((d / "max_energy_range_uj").read_text())))
        except (OSError, ValueError):
            continue
    if not readable:
        return None
    last = [int(f.read_text()) for f, _ in readable]
    total = [0.0]

    def read() -> float:
        for i, (f, wrap) in enumerate(readable):
            now = int(f.read_text())
            total[0] += (now - last[i]) if now >= last[i] else (wrap - last[i] + now)
            last[i] = now
        return total[0] / 1e6

    return read
