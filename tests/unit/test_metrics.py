import json
import math

import pytest
import torch

from lightning_llm.evaluation.metrics import LanguageModelMetrics
from lightning_llm.training.precision import resolve_precision


def test_loss_ppl_and_bits_per_byte_are_exact_over_batches():
    torch.manual_seed(0)
    nats = torch.rand(6, 10) * 5
    nbytes = torch.randint(0, 4, (6, 10))
    whole, parts = LanguageModelMetrics(), LanguageModelMetrics()
    whole.update(nats, nbytes)
    for i in range(0, 6, 2):  # uneven batches must not change the result
        parts.update(nats[i:i + 2], nbytes[i:i + 2])
    a, b = whole.compute(), parts.compute()
    assert a["loss"].item() == pytest.approx(nats.mean().item(), rel=1e-6)
    assert a["ppl"].item() == pytest.approx(math.exp(nats.mean().item()), rel=1e-5)
    text = nbytes > 0
    expected = nats[text].sum().item() / nbytes.sum().item() / math.log(2)
    assert a["bpb"].item() == pytest.approx(expected, rel=1e-6)
    assert all(a[k].item() == pytest.approx(b[k].item(), rel=1e-6) for k in a)


def test_precision_auto_resolves_and_explicit_values_pass_through():
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"
    assert resolve_precision("auto", "cpu") in ("bf16-mixed", "32-true")


@pytest.mark.parametrize(("native", "bf16_gflops", "expected"),
                         [(True, 400, "bf16-mixed"), (True, 143, "32-true"), (True, 220, "32-true"),
                          (False, 400, "32-true")])
def test_precision_auto_on_a_cpu_picks_the_faster_by_a_cached_measurement(native, bf16_gflops, expected,
                                                                          tmp_path, monkeypatch, caplog):
    from lightning_llm.training import precision

    timed = []

    def fake_peak(dtype, threads, size, seconds):
        timed.append(dtype)
        return (bf16_gflops if dtype == torch.bfloat16 else 170) * 1e9

    monkeypatch.setenv("LIGHTNING_LLM_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(precision, "measured_cpu_peak", fake_peak)
    with caplog.at_level("INFO", logger="lightning_llm"):
        assert resolve_precision("auto", "cpu") == expected
        assert resolve_precision("auto", "cpu") == expected
    assert f"trainer.precision=auto -> {expected}" in caplog.text
    if not native:
        assert not timed and "no native bf16" in caplog.text
        return
    assert timed == [torch.float32, torch.bfloat16]  # measured once; the second run read the cache
    assert f"{bf16_gflops} GFLOP/s in bf16 and 170 in fp32" in caplog.text
    cached = json.loads((tmp_path / precision.CACHE_FILE).read_text())
    assert [v["bf16"] for v in cached.values()] == [bf16_gflops * 1e9]
    (tmp_path / precision.CACHE_FILE).write_text("{not json")  # a damaged cache is measured anew
    assert resolve_precision("auto", "cpu") == expected and len(timed) == 4


def test_bits_per_byte_of_a_uniform_model_is_its_nats_over_the_utf8_bytes_of_the_text_by_hand():
    """bpb is tokenizer-independent: a model that spreads its bet evenly over V tokens pays ln V nats per
    predicted token, and bpb = those nats over the UTF-8 bytes the predicted tokens stand for, in bits."""
    from lightning_llm.data.tokenizer import token_byte_lengths, train_bpe
    from lightning_llm.training.module import CausalLMModule
    from tests.conftest import TINY_MODEL

    corpus = ["Ein naïver Café-Besuch — 日本語のテキスト, and plain English prose. " * 30, "ROMEO. But soft! " * 30]
    tok = train_bpe(corpus, 300)
    text = "A naïve café — 日本語 — at the end."
    ids = [*tok.encode(text), tok.eos_token_id]
    module = CausalLMModule(len(tok), config=TINY_MODEL, eos_token_id=tok.eos_token_id)
    torch.nn.init.zeros_(module.model.get_input_embeddings().weight)  # tied head: every logit is 0
    x = torch.tensor(ids)
    lengths = torch.from_numpy(token_byte_lengths(tok).astype("int64"))
    module.validation_step({"input_ids": x[None, :-1], "labels": x[None, 1:], "label_bytes": lengths[x[None, 1:]]}, 0)
    bpb = module.val_metrics.compute()["bpb"].item()

    first = tok.decode(ids[:1])  # the one token of the text not predicted; the EOS stands for no bytes
    predicted_tokens = len(ids) - 2
    by_hand = predicted_tokens * math.log(len(tok)) / (len(text.encode("utf-8")) - len(first.encode("utf-8")))
    assert bpb == pytest.approx(by_hand / math.log(2), rel=1e-5)


@pytest.mark.parametrize(("fp32_ms", "bf16_ms", "expected"), [(100, 60, "bf16-mixed"), (101, 113, "32-true"),
                                                               (100, 95, "32-true")])
def test_precision_auto_times_the_runs_own_model_once_per_shape(fp32_ms, bf16_ms, expected, tmp_path, monkeypatch,
                                                                 caplog):
    from lightning_llm.training import precision
    from lightning_llm.training.module import CausalLMModule
    from tests.conftest import TINY_MODEL

    monkeypatch.setenv("LIGHTNING_LLM_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: True)
    model = CausalLMModule(300, config=TINY_MODEL).model
    probe = precision.StepProbe(model, 4, 32)
    torch.manual_seed(0)
    before_rng, before_w = torch.get_rng_state(), [p.detach().clone() for p in model.parameters()]
    real = [probe.seconds(False, repeats=1), probe.seconds(True, repeats=1)]
    assert all(t > 0 for t in real) and torch.equal(torch.get_rng_state(), before_rng)  # dropout draws undone
    assert all(torch.equal(a, b) for a, b in zip(before_w, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())

    timed = []
    monkeypatch.setattr(precision.StepProbe, "seconds",
                        lambda self, bf16, **kw: timed.append(bf16) or (bf16_ms if bf16 else fp32_ms) / 1e3)
    with caplog.at_level("INFO", logger="lightning_llm"):
        assert resolve_precision("auto", "cpu", probe) == expected
        assert resolve_precision("auto", "cpu", precision.StepProbe(model, 4, 32)) == expected
    assert timed == [False, True]  # the same model and batch shape: measured once
    assert f"{bf16_ms} ms under bf16 autocast and {fp32_ms} ms in fp32" in caplog.text
    resolve_precision("auto", "cpu", precision.StepProbe(model, 8, 32))  # another batch shape: timed again
    assert len(timed) == 4


def _measure_under_lock(cache: str, log: str) -> dict:
    import os
    import time

    os.environ["LIGHTNING_LLM_CACHE"] = cache
    from lightning_llm.training import precision

    def measure():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough for the other process to reach the lock
        return {"fp32": 1.0, "bf16": 2.0}

    return precision._cached("two ranks", measure)


def test_concurrent_processes_share_one_measurement(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as DDP ranks are
    with ctx.Pool(2) as pool:
        results = pool.starmap(_measure_under_lock, [(str(tmp_path), str(tmp_path / "measured.log"))] * 2)
    assert results == [{"fp32": 1.0, "bf16": 2.0}] * 2
    assert len((tmp_path / "measured.log").read_text().split()) == 1  # one measured, the other read its result
