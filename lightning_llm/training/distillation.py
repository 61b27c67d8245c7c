"""Knowledge distillation: train a small student from a teacher's logits (Hinton et al., 2015).

loss = kd_weight * T² * KL(softmax(teacher / T) || softmax(student / T)) + ce_weight * CE(student, labels)

The T² keeps the soft-target gradients on the scale of the hard-target ones whatever the temperature.
The teacher is any causal LM folder with the student's tokenizer (the export/ of an llm-train run). It is
frozen, kept out of the module's parameters, and never written into the student's checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_llm.data.run_data import tokenizer_dir_of
from lightning_llm.errors import UserError
from lightning_llm.evaluation.metrics import token_nats
from lightning_llm.inference.loading import load_model
from lightning_llm.training.module import CausalLMModule


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 2.0, kd_weight: float = 0.5, ce_weight: float = 0.5,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, kd, ce), each a mean over target tokens; logits are [batch, seq, vocab]."""
    s, t = student_logits.float().flatten(0, 1), teacher_logits.float().flatten(0, 1)
    ce = token_nats(student_logits, labels).mean()
    kd = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), log_target=True,
                  reduction="batchmean") * temperature**2
    return kd_weight * kd + ce_weight * ce, kd, ce


class DistillationModule(CausalLMModule):
    """A `CausalLMModule` (the student, built from `arch`/`config`) that learns from a frozen teacher.

    Args:
        teacher: folder of the teacher model (`from_pretrained`); its vocabulary must be the student's.
        temperature: softens both distributions; 1 = plain KL to the teacher's predictions.
        kd_weight, ce_weight: weights of the distillation and the hard-label terms.
        **student: `CausalLMModule` arguments of the student.
    """

    def __init__(self, teacher: str, temperature: float = 2.0, kd_weight: float = 0.5, ce_weight: float = 0.5,
                 **student):
        super().__init__(**student)
        if temperature <= 0 or kd_weight < 0 or ce_weight < 0 or kd_weight + ce_weight == 0:
            raise UserError(f"distill: temperature={temperature} must be > 0 and kd_weight={kd_weight}, "
                            f"ce_weight={ce_weight} >= 0, not both 0")
        self.save_hyperparameters({"teacher": str(teacher), "temperature": temperature, "kd_weight": kd_weight,
                                   "ce_weight": ce_weight})
        object.__setattr__(self, "teacher", load_teacher(teacher, self.model.config.vocab_size))

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            teacher_logits = self.teacher(input_ids=batch["input_ids"], use_cache=False).logits
        loss, kd, ce = distillation_loss(self(batch["input_ids"]), teacher_logits, batch["labels"],
                                         self.hparams.temperature, self.hparams.kd_weight, self.hparams.ce_weight)
        return loss, {"kd": kd.detach(), "ce": ce.detach()}


def load_teacher(path: str | Path, vocab_size: int) -> torch.nn.Module:
    teacher, _ = load_model(path)
    if teacher.config.vocab_size != vocab_size:
        raise UserError(f"teacher {path} has a vocabulary of {teacher.config.vocab_size} tokens, the student "
                        f"{vocab_size}: prepare the student's data with the teacher's tokenizer "
                        f"(tokenizer.path={path}, as recipe=distill does)")
    teacher.requires_grad_(False)
    return teacher.eval()


def check_teacher_tokenizer(path: str | Path, tokenizer) -> None:
    """The teacher must read the student's token ids the same way: same vocabulary, token for token."""
    from transformers import AutoTokenizer

    if AutoTokenizer.from_pretrained(tokenizer_dir_of(path)).get_vocab() != tokenizer.get_vocab():
        raise UserError(f"teacher {path} uses another tokenizer than the student's data: prepare the data with "
                        f"the teacher's (tokenizer.path={path}, as recipe=distill does)")
