import pytest
import torch
import torch.nn.functional as F

from lightning_llm.training.distillation import distillation_loss


def test_loss_is_the_weighted_sum_of_scaled_kl_and_cross_entropy():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    total, kd, ce = distillation_loss(student, teacher, labels, temperature=3.0, kd_weight=0.7, ce_weight=0.2)
    p_t = F.softmax(teacher / 3, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(student / 3, -1))).sum(-1).mean() * 9  # per token, times T²
    assert kd.item() == pytest.approx(kl.item(), rel=1e-5)
    assert ce.item() == pytest.approx(F.cross_entropy(student.flatten(0, 1), labels.flatten()).item(), rel=1e-6)
    assert total.item() == pytest.approx(0.7 * kd.item() + 0.2 * ce.item(), rel=1e-6)


def test_kl_vanishes_when_the_student_matches_and_pulls_it_toward_the_teacher():
    teacher = torch.randn(1, 4, 7)
    _, kd, _ = distillation_loss(teacher.clone(), teacher, torch.zeros(1, 4, dtype=torch.long))
    assert kd.abs().item() < 1e-6
    student = torch.zeros(1, 4, 7, requires_grad=True)
    distillation_loss(student, teacher, torch.zeros(1, 4, dtype=torch.long), kd_weight=1.0, ce_weight=0.0)[0].backward()
    assert torch.all((student.grad < 0) == (F.softmax(teacher / 2, -1) > 1 / 7))  # up where the teacher is above
