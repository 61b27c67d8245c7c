"""`trainer.precision: auto`: bf16 mixed precision where this device runs bf16 faster than fp32, else fp32.

On CUDA bf16 (tensor cores) always pays. On CPUs it depends on the chip, not on a flag: an AVX512-BF16 CPU
without AMX can run bf16 matmuls slower than fp32 (an Intel Xeon measured 143 vs 228 GFLOP/s, 2026-12-01),
an AMD Zen 4 runs them ~2.3x faster. So "auto" times one matmul in each dtype, once per machine (the result
is cached, keyed by CPU model, torch version and threads), and picks bf16 only where it is clearly faster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from pathlib import Path

import torch
from filelock import FileLock

from lightning_llm.io import write_json
from lightning_llm.models.flops import measured_cpu_peak
from lightning_llm.paths import cache_dir

log = logging.getLogger(__name__)

# bf16-mixed must beat fp32 matmuls by this much to be chosen: autocast casts every weight to bf16 on each
# forward (Lightning disables autocast's cache) and the elementwise ops gain little, so a run's speed-up is
# well below the matmul's.
BF16_MIN_SPEEDUP = 1.3
CACHE_FILE = "cpu_precision.json"


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Return `precision` unchanged unless it is "auto"; then the faster of bf16-mixed and 32-true here,
    logged with the reason."""
    if precision != "auto":
        return precision
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_cuda:
        choice = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        why = "CUDA " + ("supports bf16" if choice == "bf16-mixed" else "without bf16 support")
    else:
        choice, why = cpu_auto_precision()
    log.info("trainer.precision=auto -> %s: %s", choice, why)
    return choice


def cpu_auto_precision() -> tuple[str, str]:
    """The CPU's choice for "auto" and why: bf16-mixed only where native bf16 matmuls are measured faster."""
    if not _cpu_has_native_bf16():
        return "32-true", "this CPU has no native bf16 (no AVX512-BF16 or AMX), so bf16 would be emulated"
    speed = cpu_matmul_speed()
    ratio = speed["bf16"] / speed["fp32"]
    measured = (f"a {speed['size']}x{speed['size']} matmul runs at {speed['bf16'] / 1e9:.0f} GFLOP/s in bf16 and "
                f"{speed['fp32'] / 1e9:.0f} in fp32 ({ratio:.2f}x) on {speed['threads']} threads of this CPU")
    if ratio >= BF16_MIN_SPEEDUP:
        return "bf16-mixed", measured
    return "32-true", f"{measured}; bf16 is chosen from {BF16_MIN_SPEEDUP}x"


def cpu_matmul_speed(size: int = 1024, seconds: float = 0.5) -> dict:
    """FLOP/s of one matmul in fp32 and bf16 on this CPU, measured once per machine and cached on disk.

    Concurrent processes (DDP ranks, torchrun) take a lock, so one measures on an otherwise idle CPU and the
    others read its result: every rank makes the same choice.
    """
    threads = torch.get_num_threads()
    key = f"{_cpu_model()}|torch {torch.__version__}|{threads} threads|{size}"
    path = cache_dir() / CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = _read(path)
        if key in cached:
            return cached[key]
        result = {"fp32": measured_cpu_peak(torch.float32, threads, size, seconds),
                  "bf16": measured_cpu_peak(torch.bfloat16, threads, size, seconds),
                  "size": size, "threads": threads}
        write_json(path, {**cached, key: result})
    return result


def host_description(device: torch.device) -> str:
    """What a figure was measured on: the GPU's name, or the CPU's with its bf16 support."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = _cpu_model().rsplit(" (flags", 1)[0]
    flags = _cpu_flags()
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "no native bf16"
    return f"{name}, {torch.get_num_threads()} threads, {bf16}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: measure again and rewrite it
    return data if isinstance(data, dict) else {}


def _cpuinfo() -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_flags() -> set[str]:
    return set(_cpuinfo().get("flags", "").split())


def _cpu_model() -> str:
    """The CPU's name and a digest of its feature flags (VMs often report one generic name for several chips)."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} (flags {hashlib.sha256(fields.get('flags', '').encode()).hexdigest()[:8]})"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on `device`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()
