"""Fine-tuning runs of `llm-train` (`task: sft | ner`, set by the recipes qa, translate, summarize, sft, ner).

`finetune(cfg, ...)` reads top to bottom like pretraining: data, module, baselines, logger, trainer; fit,
validate, test; then (rank 0) export, metrics.json beside its baselines, a few samples.
"""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from lightning_llm.cli._run import build_logger, build_trainer, export_gguf_too, gguf_type, plain
from lightning_llm.data.chat import with_chat_template
from lightning_llm.data.run_data import METRICS
from lightning_llm.errors import UserError
from lightning_llm.export import export_hf
from lightning_llm.io import write_json
from lightning_llm.models.pretrained import resolve_model
from lightning_llm.tasks import forgetting
from lightning_llm.tasks.config import GenEvalConfig
from lightning_llm.tasks.defaults import count_parameters, resolve_auto
from lightning_llm.tasks.gen_eval import GenerationEval, answer, baseline_answers
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.tasks.ner_data import NERDataModule
from lightning_llm.tasks.ner_metrics import EntityF1
from lightning_llm.tasks.ner_module import TokenClassificationModule
from lightning_llm.tasks.sft_data import SFTDataModule
from lightning_llm.tasks.sft_module import SFTModule
from lightning_llm.training.callbacks import ThroughputMFU
from lightning_llm.training.checkpointing import check_same_model
from lightning_llm.training.parallel import full_weights, shards_parameters
from lightning_llm.training.precision import host_description
from lightning_llm.training.preemption import unfinished_run_exits

log = logging.getLogger("lightning_llm")
TASKS = ("pretrain", "sft", "ner")


def finetune(cfg: DictConfig, run_dir: Path, strategy, ckpt_path: str | None, start: float) -> dict | None:
    if cfg.task not in TASKS:
        raise UserError(f"task={cfg.task!r}: choose one of {list(TASKS)}")
    init_from = resolve_model(cfg.init_from)
    resolve_auto(cfg, count_parameters(init_from))
    if cfg.task == "sft":
        datamodule = SFTDataModule(task_data(cfg), init_from, seed=cfg.seed)
        datamodule.setup("fit")
        module = SFTModule(str(init_from), plain(cfg.optim), plain(cfg.lora), compile=cfg.model.compile,
                           activation_checkpointing=cfg.model.activation_checkpointing,
                           on_nonfinite_loss=cfg.on_nonfinite_loss)
        ev = GenEvalConfig(**plain(cfg.finetune.eval))
        gen_eval = GenerationEval({k: v for k, v in datamodule.examples.items() if k != "train"},
                                  datamodule.tokenizer, ev.metrics, ev.max_examples, ev.max_new_tokens, ev.batch_size,
                                  out_dir=run_dir, samples_shown=ev.samples_shown)
        baselines = {} if ckpt_path else sft_baselines(module, datamodule, ev)
        extra = [gen_eval]
    else:
        datamodule = NERDataModule(task_data(cfg), init_from, seed=cfg.seed)
        datamodule.setup("fit")
        module = TokenClassificationModule(str(init_from), datamodule.labels, plain(cfg.optim),
                                           bidirectional=cfg.finetune.bidirectional)
        baselines = {} if ckpt_path else ner_baselines(module, datamodule)
        extra = []
    check_same_model(ckpt_path, module.hparams)
    if cfg.task == "ner" and (cfg.get("export") or {}).get("gguf"):
        raise UserError("export.gguf: an NER model is a token classifier, which llama.cpp does not run; drop "
                        "export.gguf (export/ holds the model for transformers)")
    gguf = gguf_type(cfg, module.model.config.model_type) if cfg.task == "sft" else None
    reference = _ReferenceScore(forgetting.ForgettingConfig(**plain(cfg.finetune.forgetting)), init_from,
                                datamodule.tokenizer)
    if not ckpt_path:
        reference.score_before(module.model)
    logger = build_logger(cfg, ckpt_path)
    trainer = build_trainer(cfg, run_dir, strategy, logger, extra, module.model)

    with unfinished_run_exits(trainer, run_dir):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    trainer.limit_val_batches = 1.0
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    weights = full_weights(trainer, run_dir / "checkpoints")
    if not trainer.is_global_zero:
        return None
    model = _plain_model(trainer, module, weights)
    with_chat_template(datamodule.tokenizer)
    export_hf(model, datamodule.tokenizer, run_dir / "export", max_length=max(cfg.data.seq_len, _context(model)))
    export_gguf_too(gguf, run_dir)  # of the merged model: LoRA adapters are in the weights by now
    return _finish(cfg, run_dir, trainer, module, datamodule, val, test, baselines, start,
                   reference.report(model, trainer))


class _ReferenceScore:
    """The forgetting report: bits per byte of the reference text before fine-tuning and after. A resumed run
    has no "before" figure (its first part ended before writing metrics), so it scores the base again at the end."""

    def __init__(self, cfg: forgetting.ForgettingConfig, base: Path, tokenizer):
        self.cfg, self.base, self.tokenizer, self.before = cfg, base, tokenizer, None
        self.text, self.where = forgetting.reference_text(cfg.files, cfg.max_bytes) if cfg.enabled else ("", "")

    def _score(self, model) -> dict:
        return forgetting.bits_per_byte(forgetting.language_model_view(model, self.base), self.tokenizer,
                                        self.text, self.cfg.seq_len, self.cfg.batch_size)

    def score_before(self, model) -> None:
        if self.cfg.enabled:
            self.before = self._score(model)
            log.info("Reference text (%s, %d bytes): %.4f bits per byte before fine-tuning", self.where,
                     self.before["bytes"], self.before["bpb"])

    def report(self, model, trainer: L.Trainer) -> dict | None:
        if not self.cfg.enabled:
            return None
        if self.before is None:  # resumed: the base is loaded again to score it
            self.before = self._score(_base_model(self.base))
        entry = forgetting.report(self.before, self._score(model), self.where, self.cfg.warn_above)
        for lg in trainer.loggers:  # after fit/test have flushed: write these at once
            lg.log_metrics({f"forgetting/{k}": float(entry[k]) for k in ("bpb_before", "bpb_after", "change")},
                           step=trainer.global_step)
            getattr(lg, "flush", lg.save)()  # our CSV logger buffers rows; flush() writes them
        return entry


def _base_model(base: Path):
    from lightning_llm.models.pretrained import load_causal_lm

    return load_causal_lm(base)


def _context(model) -> int:
    return getattr(model.config, "max_position_embeddings", 0) or 0


def _plain_model(trainer: L.Trainer, module: L.LightningModule, weights: dict):
    """The trained model as one plain `transformers` model: gathered when sharded, LoRA merged."""
    if shards_parameters(trainer):
        model = type(module.model)(module.model.config)
        model.load_state_dict({k.removeprefix("model."): v for k, v in weights.items()})
        return model
    return module.merged_model() if isinstance(module, SFTModule) else module.model


def sft_baselines(module: SFTModule, datamodule: SFTDataModule, ev: GenEvalConfig) -> dict[str, dict[str, float]]:
    """Test-split scores of the model before fine-tuning and of the trivial answerer (`ev.baseline`)."""
    if not ev.metrics:
        return {}
    test = datamodule.examples["test"][:ev.max_examples]
    refs = [e.references for e in test]
    out = {"before_finetuning": score(ev.metrics, answer(module.model, datamodule.tokenizer, test, ev.max_new_tokens,
                                                         ev.batch_size), refs)}
    if ev.baseline:
        trivial = baseline_answers(ev.baseline, test, datamodule.examples["train"])
        out[f"trivial ({ev.baseline})"] = score(ev.metrics, trivial, refs)
    return out


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


def _finish(cfg: DictConfig, run_dir: Path, trainer: L.Trainer, module, datamodule, val: dict, test: dict,
            baselines: dict, start: float, forgot: dict | None = None) -> dict:
    throughput = next(c for c in trainer.callbacks if isinstance(c, ThroughputMFU))
    metrics = {
        "task": cfg.task,
        "init_from": str(cfg.init_from),
        "val": {k.split("/", 1)[1]: v for k, v in val.items()},
        "test": {k.split("/", 1)[1]: v for k, v in test.items()},
        "baselines": baselines,
        "forgetting": forgot,
        "steps": trainer.global_step,
        "precision": str(trainer.precision),
        "host": host_description(trainer.strategy.root_device),
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "perf": {k.split("/", 1)[1]: v for k, v in throughput.last.items()},
        "energy_source": throughput.energy.source if throughput.energy else None,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    if hasattr(datamodule, "stats"):
        metrics["data"] = datamodule.stats
    write_json(run_dir / METRICS, metrics)
    print(score_table(metrics))
    if forgot:
        print(forgetting.closing_line(forgot))
    print(f"Outputs in {run_dir}: metrics.json, curves.png, checkpoints/, export/"
          + (", predictions_test.jsonl" if cfg.task == "sft" else ""))
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


def task_data(cfg: DictConfig) -> dict:
    """The task's data keys. The fine-tuning recipes switch the cleaning group off; `data=sft` composed by hand
    still carries `cleaning`, which task data (not pretraining text) does not use."""
    data = plain(cfg.data)
    data.pop("cleaning", None)
    return data

