"""DPOModule: align a pretrained causal LM to preference pairs (DPO, IPO, hinge, robust, SimPO, ORPO; full or LoRA).

The reference costs no second model under LoRA: it is the base with the adapters switched off. Under full
fine-tuning it is a frozen copy, kept outside the module tree (not in checkpoints or the optimizer). With
`dpo.precompute_reference` the reference log-probs come with the batches and no reference model exists at all.
Log-probs are summed per sequence from the fused LM head (`linear_token_logps`), over the completion tokens only:
the [tokens x vocabulary] logits never exist, and prompt tokens never reach the head.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict

import torch
from torchmetrics import MeanMetric

from lightning_llm.config import from_dict
from lightning_llm.data.config import IGNORE
from lightning_llm.errors import UserError
from lightning_llm.models.pretrained import load_causal_lm
from lightning_llm.tasks.config import DPOConfig, LoraConfig
from lightning_llm.tasks.dpo_losses import preference_loss
from lightning_llm.tasks.lora import add_lora, merged
from lightning_llm.training.fused_loss import decoder_and_head, linear_token_logps
from lightning_llm.training.module import NONFINITE, CausalLMModule
from lightning_llm.training.optim import OptimConfig

METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "logps/chosen",
           "logps/rejected", "preference_accuracy")


def sequence_logps(model, batch: dict[str, torch.Tensor], fused: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of every sequence of the batch (`seq_ids`: 2i chosen, 2i+1 rejected) and their token
    counts, [2 x pairs] each. `fused`: through the LM head a chunk at a time, only at the completion tokens."""
    labels, seq_ids = batch["labels"], batch["seq_ids"]
    n_seq = 2 * batch["pair_index"].shape[0]
    keep = labels != IGNORE
    parts = decoder_and_head(model) if fused else None
    if parts is not None:
        decoder, head = parts
        hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                         use_cache=False).last_hidden_state
        token = linear_token_logps(hidden[keep], head.weight, labels[keep])
    else:
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        token = torch.log_softmax(logits[keep].float(), dim=-1).gather(1, labels[keep][:, None]).squeeze(1)
    seq = seq_ids[keep]
    sums = torch.zeros(n_seq, dtype=torch.float32, device=token.device).index_add(0, seq, token)
    return sums, torch.bincount(seq, minlength=n_seq)


class DPOModule(CausalLMModule):
    """A `CausalLMModule` trained on preference pairs from a `PreferenceDataModule`.

    Args:
        init_from: a causal LM: an HF folder (an llm-train or SFT export), a hub id, a .gguf file or a built-in name.
        dpo: the loss and its reference, see `DPOConfig`.
        optim: AdamW and schedule, see `OptimConfig`.
        lora: low-rank adapters, see `LoraConfig` (`r: 0` fine-tunes every weight, with a frozen reference copy).
    """

    def __init__(self, init_from: str, dpo: DPOConfig | dict | None = None, optim: OptimConfig | dict | None = None,
                 lora: LoraConfig | dict | None = None, compile: bool = False, activation_checkpointing: bool = False,
                 on_nonfinite_loss: str = "stop", trust_remote_code: bool = False):
        super(CausalLMModule, self).__init__()
        if on_nonfinite_loss not in NONFINITE:
            raise UserError(f"on_nonfinite_loss={on_nonfinite_loss!r}: choose one of {list(NONFINITE)}")
        self.dpo_cfg = from_dict(DPOConfig, dpo, "dpo")
        self.optim_cfg = from_dict(OptimConfig, optim, "optim")
        self.lora_cfg = from_dict(LoraConfig, lora, "lora")
        self.save_hyperparameters({"init_from": str(init_from), "dpo": asdict(self.dpo_cfg),
                                   "optim": asdict(self.optim_cfg), "lora": asdict(self.lora_cfg), "compile": compile,
                                   "activation_checkpointing": activation_checkpointing,
                                   "on_nonfinite_loss": on_nonfinite_loss, "trust_remote_code": trust_remote_code})
        base = load_causal_lm(init_from, trust_remote_code)
        # full fine-tuning against a live reference: a frozen copy of the base, outside the module tree
        frozen = None
        if self.dpo_cfg.needs_reference and not self.dpo_cfg.precompute_reference and self.lora_cfg.r <= 0:
            frozen = copy.deepcopy(base).eval().requires_grad_(False)
        object.__setattr__(self, "_frozen_reference", frozen)
        self.model = add_lora(base, self.lora_cfg)
        self._init_state()
        self.eval_metrics = torch.nn.ModuleDict({s: torch.nn.ModuleDict({k.replace("/", "_"): MeanMetric()
                                                                         for k in METRICS}) for s in ("val", "test")})

    def on_fit_start(self) -> None:
        if self._frozen_reference is not None:
            self._frozen_reference.to(self.device)

    # --- log-probs -------------------------------------------------------------------------------------------
    def policy_logps(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return sequence_logps(self.model, batch, fused=self._decoder_and_head() is not None)

    @torch.no_grad()
    def reference_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[2 x pairs] summed log-probs under the reference: the base with the adapters off (LoRA), the frozen
        copy (full fine-tuning), or the model as it is (before training: what `precompute` records)."""
        if self._frozen_reference is not None:
            model = self._frozen_reference.to(batch["input_ids"].device)
            return sequence_logps(model, batch, fused=self._decoder_and_head() is not None)[0]
        off = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
        was = self.model.training
        self.model.eval()  # the reference has no dropout
        with off:
            out = sequence_logps(self.model, batch, fused=self._decoder_and_head() is not None)[0]
        self.model.train(was)
        return out

    def pair_values(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-pair loss, rewards and log-probs of the batch."""
        logps, counts = self.policy_logps(batch)
        pc, pr, nc, nr = logps[0::2], logps[1::2], counts[0::2], counts[1::2]
        rc = rr = None
        if self.dpo_cfg.needs_reference:
            if "reference_logps" in batch:
                ref = batch["reference_logps"].to(pc)
                rc, rr = ref[:, 0], ref[:, 1]
            else:
                ref = self.reference_logps(batch)
                rc, rr = ref[0::2], ref[1::2]
        loss, chosen, rejected = preference_loss(self.dpo_cfg, pc, pr, rc, rr, nc, nr)
        mean_c, mean_r = pc.detach() / nc.clamp(min=1), pr.detach() / nr.clamp(min=1)
        return {"loss": loss, "rewards/chosen": chosen, "rewards/rejected": rejected,
                "rewards/accuracy": (chosen > rejected).float(), "rewards/margin": chosen - rejected,
                "logps/chosen": pc.detach(), "logps/rejected": pr.detach(),
                "preference_accuracy": (mean_c > mean_r).float()}

    # --- training and evaluation ------------------------------------------------------------------------------
    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = self.pair_values(batch)
        weight = batch["pair_weight"].to(values["loss"])
        mean = {k: (v * weight).sum() / weight.sum().clamp(min=1) for k, v in values.items()}
        loss = mean.pop("loss")
        return loss, {k: v.detach() for k, v in mean.items() if k != "preference_accuracy"}

    def _evaluate(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        values = self.pair_values(batch)
        weight = batch["pair_weight"].to(values["loss"])
        for k, v in values.items():
            self.eval_metrics[split][k.replace("/", "_")].update(v.detach().float(), weight)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def _log_split(self, split: str) -> None:
        values = {}
        for k in METRICS:
            metric = self.eval_metrics[split][k.replace("/", "_")]
            if metric.update_count:
                values[f"{split}/{k}"] = metric.compute()  # reduced across processes by torchmetrics
            metric.reset()
        if values:
            self.log_dict(values, sync_dist=True)

    def merged_model(self):
        """The model to export: LoRA adapters merged into the weights."""
        return merged(self.model)
