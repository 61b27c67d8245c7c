"""task=ner (recipe ner): token classification, scored by entity F1."""

from __future__ import annotations

import collections
from pathlib import Path

import torch
from omegaconf import DictConfig

from lightning_llm.tasks.ner_data import NERDataModule
from lightning_llm.tasks.ner_metrics import EntityF1
from lightning_llm.tasks.ner_module import TokenClassificationModule
from lightning_llm.tasks.task import FinetuneTask, TaskParts, plain, task_data


class NERTask(FinetuneTask):
    name = "ner"
    gguf = False  # a token classifier: llama.cpp runs causal LMs

    def build(self, cfg: DictConfig, init_from: Path, run_dir: Path, resumed: bool) -> TaskParts:
        datamodule = NERDataModule(task_data(cfg), init_from, seed=cfg.seed)
        datamodule.setup("fit")
        module = TokenClassificationModule(str(init_from), datamodule.labels, plain(cfg.optim),
                                           bidirectional=cfg.finetune.bidirectional)
        baselines = {} if resumed else ner_baselines(module, datamodule)
        return TaskParts(datamodule, module, baselines, data_stats=getattr(datamodule, "stats", None))


def ner_baselines(module: TokenClassificationModule, datamodule: NERDataModule) -> dict[str, dict[str, float]]:
    """Test-split entity F1 of the untrained head and of tagging every word with the majority tag."""
    gold = [tags for _, tags, _ in datamodule.sentences["test"]]
    counts = collections.Counter(t for _, tags, _ in datamodule.sentences["train"] for t in tags)
    majority = counts.most_common(1)[0][0]
    trivial = EntityF1(datamodule.labels)
    trivial.update([[majority] * len(g) for g in gold], gold)
    before = EntityF1(datamodule.labels)
    was = module.training
    module.eval()
    with torch.no_grad():
        for batch in datamodule.eval_dataloader("test"):
            before.update_ids(module(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    module.train(was)
    keep = ("f1", "precision", "recall")
    return {"before_finetuning": {k: float(v) for k, v in before.compute().items() if k in keep},
            f"trivial (majority tag {majority})": {k: float(v) for k, v in trivial.compute().items() if k in keep}}
