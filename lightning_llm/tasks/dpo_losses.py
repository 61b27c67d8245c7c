"""Preference losses on per-sequence log-probs: DPO (sigmoid) and its cousins, and the reference-free SimPO and ORPO.

Every function takes the summed log-probs of each pair's chosen and rejected completion under the policy (`pc`,
`pr`), under the reference (`rc`, `rr`; unused by simpo and orpo) and the completions' token counts (`nc`, `nr`),
and returns per-pair losses and the implicit rewards of chosen and rejected (what rewards/* report):

- sigmoid (Rafailov et al. 2023): -log s(b*d), d = (pc - rc) - (pr - rr); with label_smoothing e, the conservative
  form -(1-e) log s(b*d) - e log s(-b*d) (cDPO);
- robust (Chowdhury et al. 2024): (-(1-e) log s(b*d) + e log s(-b*d)) / (1 - 2e);
- hinge (SLiC): max(0, 1 - b*d);
- ipo (Azar et al. 2023): (d' - 1/(2b))^2 on length-averaged log-probs d' (as TRL computes it);
- simpo (Meng et al. 2024): -log s(b*(pc/nc - pr/nr) - gamma), no reference;
- orpo (Hong et al. 2024): -pc/nc - w * log s(log odds(chosen) - log odds(rejected)), odds p/(1-p) of the
  length-averaged probability p, no reference.
Rewards: b*(policy - reference) for the DPO family (length-averaged for ipo), b*(pc/nc) for simpo, w*(pc/nc) for orpo.

`sft_weight` s > 0 adds s * (-pc/nc), the chosen completion's mean token NLL, to any loss but orpo (which has it):
DPO + NLL, as RPO (Pang et al. 2024, TRL's `rpo_alpha`) and Llama 3's preference stage. It keeps the chosen
answer's likelihood from falling with the rejected one's, and supervises a base that was never fine-tuned on the
task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_llm.tasks.config import DPOConfig

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # per-pair loss, chosen reward, rejected reward


def preference_loss(cfg: DPOConfig, pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor | None,
                    rr: torch.Tensor | None, nc: torch.Tensor, nr: torch.Tensor) -> Losses:
    """Per-pair losses and rewards of `cfg.loss` (see the module's docstring for each formula)."""
    nc, nr = nc.clamp(min=1).to(pc.dtype), nr.clamp(min=1).to(pr.dtype)
    loss, chosen, rejected = _loss(cfg, pc, pr, rc, rr, nc, nr)
    if cfg.sft_weight:
        loss = loss - cfg.sft_weight * pc / nc
    return loss, chosen, rejected


def _loss(cfg: DPOConfig, pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor | None, rr: torch.Tensor | None,
          nc: torch.Tensor, nr: torch.Tensor) -> Losses:
    if cfg.loss == "simpo":
        return simpo(pc / nc, pr / nr, cfg.beta, cfg.gamma)
    if cfg.loss == "orpo":
        return orpo(pc / nc, pr / nr, cfg.orpo_weight)
    if rc is None or rr is None:
        raise ValueError(f"dpo.loss={cfg.loss} needs the reference's log-probs")
    if cfg.loss == "ipo":
        return ipo(pc / nc, pr / nr, rc / nc, rr / nr, cfg.beta)
    chosen, rejected = pc - rc, pr - rr
    z = cfg.beta * (chosen - rejected)
    e = cfg.label_smoothing
    if cfg.loss == "sigmoid":
        loss = -F.logsigmoid(z) * (1 - e) - F.logsigmoid(-z) * e
    elif cfg.loss == "robust":
        loss = (-F.logsigmoid(z) * (1 - e) + F.logsigmoid(-z) * e) / (1 - 2 * e)
    elif cfg.loss == "hinge":
        loss = torch.relu(1 - z)
    else:
        raise ValueError(f"unknown dpo.loss {cfg.loss!r}")
    return loss, cfg.beta * chosen.detach(), cfg.beta * rejected.detach()


def ipo(mc: torch.Tensor, mr: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor, beta: float) -> Losses:
    chosen, rejected = mc - ref_c, mr - ref_r
    loss = (chosen - rejected - 1 / (2 * beta)) ** 2
    return loss, beta * chosen.detach(), beta * rejected.detach()


def simpo(mc: torch.Tensor, mr: torch.Tensor, beta: float, gamma: float) -> Losses:
    loss = -F.logsigmoid(beta * (mc - mr) - gamma)
    return loss, beta * mc.detach(), beta * mr.detach()


def orpo(mc: torch.Tensor, mr: torch.Tensor, weight: float) -> Losses:
    # log(1 - p) = log(-expm1(log p)); a mean log-prob of exactly 0 (p = 1) would make it -inf
    mc_, mr_ = mc.clamp(max=-1e-6), mr.clamp(max=-1e-6)
    log_odds = (mc_ - mr_) - (torch.log(-torch.expm1(mc_)) - torch.log(-torch.expm1(mr_)))
    loss = -mc - weight * F.logsigmoid(log_odds)
    return loss, weight * mc.detach(), weight * mr.detach()
