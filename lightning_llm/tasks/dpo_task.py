"""task=dpo (recipe dpo): preference alignment, scored by reward accuracy and the base's own preference accuracy."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from lightning_llm.tasks.dpo_module import DPOModule
from lightning_llm.tasks.preference_data import PreferenceDataModule
from lightning_llm.tasks.task import FinetuneTask, TaskParts, plain, task_data

log = logging.getLogger("lightning_llm")


class DPOTask(FinetuneTask):
    name = "dpo"

    def build(self, cfg: DictConfig, init_from: Path, run_dir: Path, resumed: bool) -> TaskParts:
        data = task_data(cfg)
        datamodule = PreferenceDataModule(data, init_from, seed=cfg.seed)
        datamodule.setup("fit")
        module = DPOModule(str(init_from), plain(cfg.dpo), plain(cfg.optim), plain(cfg.lora),
                           compile=cfg.model.compile, activation_checkpointing=cfg.model.activation_checkpointing,
                           on_nonfinite_loss=cfg.on_nonfinite_loss)
        if module.dpo_cfg.precompute_reference and module.dpo_cfg.needs_reference:
            from lightning_llm.tasks.reference import precompute_reference

            precompute_reference(module, datamodule, init_from)
        baselines = {} if resumed else preference_baselines(module, datamodule)
        return TaskParts(datamodule, module, baselines, data_stats=datamodule.stats)


@torch.no_grad()
def preference_baselines(module: DPOModule, datamodule: PreferenceDataModule) -> dict[str, dict[str, float]]:
    """Test-split preference accuracy (the chosen completion's mean token log-prob above the rejected one's) of
    the base before training, and of the trivial rule "prefer the longer completion"."""
    was = module.training
    module.eval()
    base = longer = total = 0.0
    for batch in datamodule.eval_dataloader("test"):
        logps, counts = module.policy_logps(batch)
        w = batch["pair_weight"]
        nc, nr = counts[0::2].clamp(min=1), counts[1::2].clamp(min=1)
        base += float(((logps[0::2] / nc > logps[1::2] / nr).float() * w).sum())
        longer += float(((nc > nr).float() + 0.5 * (nc == nr).float()).mul(w).sum())  # a tie: a coin flip
        total += float(w.sum())
    module.train(was)
    log.info("Before training: the base prefers the chosen completion of %.1f%% of the test pairs", 100 * base / total)
    return {"before_finetuning": {"preference_accuracy": base / total},
            "trivial (longer completion)": {"preference_accuracy": longer / total}}
