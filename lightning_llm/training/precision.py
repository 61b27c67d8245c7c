"""`trainer.precision: auto`: bf16 mixed precision where this device trains faster in it than in fp32.

On CUDA bf16 (tensor cores) always pays. On CPUs it depends on the chip and on the model, not on a flag: an
AVX512-BF16 Xeon without AMX ran bf16 matmuls slower than fp32 (143 vs 228 GFLOP/s, 2026-12-01); a Xeon with AMX
runs a 1024x1024 matmul 3.5-4x faster in bf16, yet the default recipe's 0.7M-parameter model (2 x 128 dims, rows of
128) trains 0.89x as fast under bf16 autocast there: at small widths the casts, norms, attention and loss dominate.
So "auto" times the run's own model (forward and backward of a slice of its batch: whole rows, PROBE_TOKENS tokens,
in each precision) once per machine and model shape, caches the result, and picks bf16-mixed only where it is clearly
faster. The slice keeps the probe to seconds on a real base (the whole 32x128 batch of a 135M model took 96 s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock

from lightning_llm.io import write_json
from lightning_llm.models.flops import measured_cpu_peak
from lightning_llm.paths import cache_dir

log = logging.getLogger(__name__)

# bf16-mixed must train a step this much faster to be chosen: the optimizer step and the data loading gain nothing.
BF16_MIN_SPEEDUP = 1.1
# Without a model to time (resolve_precision called on its own), a matmul stands in; its gain overstates a run's.
BF16_MIN_MATMUL_SPEEDUP = 1.3
CACHE_FILE = "cpu_precision.json"
# The probe times this many tokens of the run's batch (whole rows, one at least): the ratio of the two precisions is
# what it decides on, and a slice gives it (a whole 32x128 batch of a 135M model took 96 s on a CPU). Not fewer: AMX
# pays only on big enough matmuls. SmolLM2-135M forward+backward on a Xeon with AMX (2026-12-07), bf16 over fp32:
# 1x143 tokens 1.14x, 2x128 1.42x, 1x512 1.82x, 4x495 2.16x.
PROBE_TOKENS = 512
# ... and at most this many FLOPs per forward and backward (6 x parameters x tokens): 512 tokens of a 135M model,
# ~2 s in fp32 on 2 CPU cores; with a warm-up and one timing in each precision the probe takes a few seconds.
PROBE_FLOPS = 4.2e11
PROBE_MAX_LEN = 512  # rows longer than this are timed on their first PROBE_MAX_LEN tokens


class StepProbe:
    """Times one training step's forward and backward of `model` on a random batch of the run's shape, in fp32 and
    under bf16 autocast. The global random state is left as it was (dropout draws), the weights untouched."""

    def __init__(self, model: torch.nn.Module, batch_size: int, seq_len: int, max_tokens: int = PROBE_TOKENS,
                 max_flops: float = PROBE_FLOPS):
        # A slice of the batch: rows of the run's length (up to PROBE_MAX_LEN), as many as fit max_tokens and, for a
        # big model, max_flops (one row at least, the slice of a row for a model too big for even one).
        params = sum(p.numel() for p in model.parameters())
        length = max(min(seq_len, 64), min(seq_len, PROBE_MAX_LEN, int(max_flops // (6 * max(params, 1)))))
        rows = max(1, min(batch_size, max_tokens // length, int(max_flops // (6 * max(params, 1) * length))))
        self.model, self.shape, self.batch = model, (rows, length), (batch_size, seq_len)
        config = getattr(model, "config", None)
        fields = config.to_json_string(use_diff=True) if config is not None else repr(model)
        digest = hashlib.sha256(fields.encode()).hexdigest()[:12]
        self.key = f"{type(model).__name__} {digest} rows {rows}x{length}"  # what was timed

    def seconds(self, bf16: bool, repeats: int = 3, budget_s: float = 2.0) -> float:
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", 256)
        with torch.random.fork_rng():
            ids = torch.randint(0, vocab, self.shape, device=next(self.model.parameters()).device)
            times = []
            for i in range(repeats + 1):  # the first is a warm-up
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = self._forward(ids)
                logits.float().mean().backward()
                times.append(time.perf_counter() - start)
                if i and sum(times) > budget_s:  # a big model on a CPU: a warm-up and one timing are enough
                    break
            self.model.zero_grad(set_to_none=True)
        return statistics.median(times[1:])


    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        try:
            return self.model(input_ids=ids, use_cache=False).logits
        except TypeError:  # a head without a cache (token classification)
            return self.model(input_ids=ids).logits


def resolve_precision(precision: str | int, accelerator: str = "auto", probe: StepProbe | None = None) -> str | int:
    """Return `precision` unchanged unless it is "auto"; then the faster of bf16-mixed and 32-true here (timed
    with `probe`, the run's model, where given), logged with the reason."""
    if precision != "auto":
        return precision
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_cuda:
        choice = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        why = "CUDA " + ("supports bf16" if choice == "bf16-mixed" else "without bf16 support")
    else:
        choice, why = cpu_auto_precision(probe)
    log.info("trainer.precision=auto -> %s: %s", choice, why)
    return choice


def cpu_auto_precision(probe: StepProbe | None = None) -> tuple[str, str]:
    """The CPU's choice for "auto" and why: bf16-mixed only where native bf16 is measured faster."""
    if not _cpu_has_native_bf16():
        return "32-true", "this CPU has no native bf16 (no AVX512-BF16 or AMX), so bf16 would be emulated"
    threads = torch.get_num_threads()
    if probe is None:
        speed = _cached(f"matmul 1024|{threads} threads", lambda: {
            "fp32": measured_cpu_peak(torch.float32, threads, 1024, 0.5),
            "bf16": measured_cpu_peak(torch.bfloat16, threads, 1024, 0.5)})
        ratio, need = speed["bf16"] / speed["fp32"], BF16_MIN_MATMUL_SPEEDUP
        measured = (f"a 1024x1024 matmul runs at {speed['bf16'] / 1e9:.0f} GFLOP/s in bf16 and "
                    f"{speed['fp32'] / 1e9:.0f} in fp32 ({ratio:.2f}x) on {threads} threads of this CPU")
    else:
        speed = _cached(f"{probe.key}|{threads} threads", lambda: _time_both(probe))
        ratio, need = speed["fp32"] / speed["bf16"], BF16_MIN_SPEEDUP
        measured = (f"a forward and backward of this model on {probe.shape[0]}x{probe.shape[1]} tokens (a slice of "
                    f"the {probe.batch[0]}x{probe.batch[1]} batch) takes "
                    f"{speed['bf16'] * 1e3:.0f} ms under bf16 autocast and {speed['fp32'] * 1e3:.0f} ms in fp32 "
                    f"({ratio:.2f}x) on {threads} threads of this CPU")
    if ratio >= need:
        return "bf16-mixed", measured
    return "32-true", f"{measured}; bf16 is chosen from {need}x"


def _time_both(probe: StepProbe) -> dict:
    log.info("trainer.precision=auto: timing the model in fp32 and bf16 on %dx%d tokens of the batch (once per "
             "machine and model shape)", *probe.shape)
    return {"fp32": probe.seconds(False), "bf16": probe.seconds(True)}


def _cached(what: str, measure: Callable[[], dict]) -> dict:
    """`measure()` once per machine (CPU, torch version) and `what`, cached on disk.

    Concurrent processes (DDP ranks, torchrun) take a lock, so one measures on an otherwise idle CPU and the
    others read its result: every rank makes the same choice.
    """
    key = f"{_cpu_model()}|torch {torch.__version__}|{what}"
    path = cache_dir() / CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = _read(path)
        if key in cached:
            return cached[key]
        result = measure()
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
