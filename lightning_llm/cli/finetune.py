"""Fine-tuning runs of `llm-train` (`task: sft | ner | dpo`, set by the recipes qa, translate, summarize, sft, ner,
dpo). Each task is one `FinetuneTask` in `lightning_llm.tasks` (its data, module, baselines, evaluation and
export), looked up by name.

`finetune(cfg, ...)` reads top to bottom like pretraining: the task's parts, the forgetting report's "before",
logger and trainer; fit, validate, test; then (rank 0) export, metrics.json beside its baselines, the closing lines.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from lightning_llm.cli._run import build_logger, build_trainer, export_gguf_too, gguf_type, plain
from lightning_llm.data.chat import with_chat_template
from lightning_llm.data.run_data import METRICS
from lightning_llm.export import export_hf
from lightning_llm.io import write_json
from lightning_llm.models.pretrained import resolve_model
from lightning_llm.tasks import forgetting
from lightning_llm.tasks.defaults import count_parameters, resolve_auto
from lightning_llm.tasks.registry import get_task
from lightning_llm.tasks.task import FinetuneTask, TaskParts
from lightning_llm.training.callbacks import ThroughputMFU
from lightning_llm.training.checkpointing import check_same_model
from lightning_llm.training.parallel import full_weights, shards_parameters
from lightning_llm.training.precision import host_description
from lightning_llm.training.preemption import unfinished_run_exits

log = logging.getLogger("lightning_llm")
__all__ = ["finetune", "score_table"]


def finetune(cfg: DictConfig, run_dir: Path, strategy, ckpt_path: str | None, start: float) -> dict | None:
    task = get_task(cfg.task)
    init_from = resolve_model(cfg.init_from)
    resolve_auto(cfg, count_parameters(init_from))
    parts = task.build(cfg, init_from, run_dir, resumed=bool(ckpt_path))
    module, datamodule = parts.module, parts.datamodule
    check_same_model(ckpt_path, module.hparams)
    task.check_export(cfg)
    gguf = gguf_type(cfg, module.model.config.model_type) if task.gguf else None
    reference = forgetting.ReferenceScore(forgetting.ForgettingConfig(**plain(cfg.finetune.forgetting)), init_from,
                                          datamodule.tokenizer)
    if not ckpt_path:
        reference.score_before(module.model)
    logger = build_logger(cfg, ckpt_path)
    trainer = build_trainer(cfg, run_dir, strategy, logger, parts.callbacks, module.model)

    with unfinished_run_exits(trainer, run_dir):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    trainer.limit_val_batches = 1.0
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    weights = full_weights(trainer, run_dir / "checkpoints")
    if not trainer.is_global_zero:
        return None
    model = _plain_model(trainer, task, module, weights)
    with_chat_template(datamodule.tokenizer)
    export_hf(model, datamodule.tokenizer, run_dir / "export", max_length=max(cfg.data.seq_len, _context(model)))
    export_gguf_too(gguf, run_dir)  # of the merged model: LoRA adapters are in the weights by now
    forgot = reference.report(model, trainer.loggers, trainer.global_step)
    return _finish(cfg, run_dir, trainer, module, parts, val, test, start, forgot)


def _context(model) -> int:
    return getattr(model.config, "max_position_embeddings", 0) or 0


def _plain_model(trainer: L.Trainer, task: FinetuneTask, module: L.LightningModule, weights: dict):
    """The trained model as one plain `transformers` model: gathered when sharded, LoRA merged."""
    if shards_parameters(trainer):
        model = type(module.model)(module.model.config)
        model.load_state_dict({k.removeprefix("model."): v for k, v in weights.items()})
        return model
    return task.export_model(module)


def _finish(cfg: DictConfig, run_dir: Path, trainer: L.Trainer, module, parts: TaskParts, val: dict, test: dict,
            start: float, forgot: dict | None = None) -> dict:
    throughput = next(c for c in trainer.callbacks if isinstance(c, ThroughputMFU))
    metrics = {
        "task": cfg.task,
        "init_from": str(cfg.init_from),
        "val": {k.split("/", 1)[1]: v for k, v in val.items()},
        "test": {k.split("/", 1)[1]: v for k, v in test.items()},
        "baselines": parts.baselines,
        "forgetting": forgot,
        "steps": trainer.global_step,
        "precision": str(trainer.precision),
        "host": host_description(trainer.strategy.root_device),
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "perf": {k.split("/", 1)[1]: v for k, v in throughput.last.items()},
        "energy_source": throughput.energy.source if throughput.energy else None,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    if parts.data_stats is not None:
        metrics["data"] = parts.data_stats
    write_json(run_dir / METRICS, metrics)
    print(score_table(metrics))
    if forgot:
        print(forgetting.closing_line(forgot))
    print(f"Outputs in {run_dir}: " + ", ".join(["metrics.json", "curves.png", "checkpoints/", "export/",
                                                 *parts.outputs]))
    return metrics


def score_table(metrics: dict) -> str:
    """Test scores of the fine-tuned model beside its baselines, one column per metric."""
    test, baselines = metrics["test"], metrics.get("baselines") or {}
    names = [k for k in ((baselines and next(iter(baselines.values()))) or {}) if k in test] or \
        [k for k in test if k not in ("loss", "ppl", "bpb")][:6]
    if not names:
        names = [k for k in ("loss", "ppl") if k in test]
    rows = [(name, vals) for name, vals in baselines.items()] + [("fine-tuned", test)]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["", "test".ljust(width) + "".join(f"{n:>12}" for n in names)]
    for label, vals in rows:
        lines.append(label.ljust(width) + "".join(f"{vals.get(n, float('nan')):>12.2f}" for n in names))
    return "\n".join(lines)
