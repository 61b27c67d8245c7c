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
