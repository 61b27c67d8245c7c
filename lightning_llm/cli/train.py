"""`llm-train`: prepare data, train, validate, test, export, sample; outputs in the Hydra run dir.

`train(cfg)` reads top to bottom: build the data, the module, the logger and the trainer; fit, validate
and test; then (rank 0) export, write metrics.json and print samples.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import check_recipe_arg, hydra_main
from lightning_llm.cli._continued import continued_from, validate_before_training
from lightning_llm.cli._run import build_logger, build_trainer, export_gguf_too, gguf_type, plain
from lightning_llm.data import PretrainDataModule
from lightning_llm.data.pipeline import REPORT
from lightning_llm.data.run_data import METRICS, PREPARED_KEY
from lightning_llm.errors import UserError
from lightning_llm.export import export_hf
from lightning_llm.inference import generate
from lightning_llm.io import write_json
from lightning_llm.run_lock import lock_run_dir
from lightning_llm.training.callbacks import InspectViews, MixtureMetrics, TaskEval, TextSamples, ThroughputMFU
from lightning_llm.training.checkpointing import check_same_model, resolve_resume
from lightning_llm.training.distillation import DistillationModule, check_teacher_tokenizer
from lightning_llm.training.module import CausalLMModule
from lightning_llm.training.parallel import check_multirun, full_model, full_weights
from lightning_llm.training.precision import host_description
from lightning_llm.training.preemption import unfinished_run_exits
from lightning_llm.training.schedule import trainer_clock
from lightning_llm.training.tracking import sync_hint

log = logging.getLogger("lightning_llm")


def train(cfg: DictConfig) -> dict | None:
    start = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    lock_run_dir(run_dir)
    strategy = _strategy(cfg)
    ckpt_path = resolve_resume(cfg.resume, cfg.ckpt_path, run_dir / "checkpoints")
    L.seed_everything(cfg.seed, workers=True)

    if cfg.get("task", "pretrain") != "pretrain":
        from lightning_llm.cli.finetune import finetune

        return finetune(cfg, run_dir, strategy, ckpt_path, start)
    base = continued_from(cfg)
    datamodule = build_data(cfg, base)
    module = build_module(cfg, datamodule, base)
    check_same_model(ckpt_path, module.hparams)
    gguf = gguf_type(cfg, module.model.config.model_type)
    logger = build_logger(cfg, ckpt_path, datamodule.prepared_dir / REPORT)
    trainer = build_trainer(cfg, run_dir, strategy, logger, pretrain_callbacks(cfg, datamodule, run_dir), module.model)

    before = validate_before_training(trainer, module, datamodule, run_dir, bool(ckpt_path)) if base else None
    fit_start = time.perf_counter()
    with unfinished_run_exits(trainer, run_dir):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    module.train_time_s = train_time(trainer, time.perf_counter() - fit_start)
    trainer.limit_val_batches = 1.0  # trainer.limit_val_batches is for the checks during training only
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    weights = full_weights(trainer, run_dir / "checkpoints")  # gathered in full, also when sharded
    if not trainer.is_global_zero:
        return None
    metrics = finish(cfg, run_dir, trainer, module, datamodule, full_model(trainer, module, weights), val, test, start,
                     before)
    export_gguf_too(gguf, run_dir)
    return metrics


def _strategy(cfg: DictConfig):
    if cfg.distill is not None and OmegaConf.is_missing(cfg.distill, "teacher"):
        raise UserError("recipe=distill needs its teacher: add distill.teacher=<the export/ folder of a trained "
                        "model>, e.g. of an llm-train run of the default recipe")
    strategy = instantiate(cfg.strategy) if isinstance(cfg.strategy, DictConfig) else cfg.strategy
    check_multirun(HydraConfig.get().mode == RunMode.MULTIRUN, strategy, cfg.trainer.devices)
    return strategy


def build_data(cfg: DictConfig, base: Path | None = None) -> PretrainDataModule:
    tokenizer = plain(cfg.tokenizer) if base is None else {**plain(cfg.tokenizer), "path": str(base)}
    datamodule = PretrainDataModule(plain(cfg.data), tokenizer, cfg.paths.data_dir, seed=cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_module(cfg: DictConfig, datamodule: PretrainDataModule, base: Path | None = None) -> CausalLMModule:
    m = cfg.model
    student = dict(vocab_size=datamodule.vocab_size, arch=m.arch, config=plain(m.config), init=plain(m.init),
                   optim=plain(cfg.optim), eos_token_id=datamodule.tokenizer.eos_token_id, compile=m.compile,
                   activation_checkpointing=m.activation_checkpointing, on_nonfinite_loss=cfg.on_nonfinite_loss,
                   init_from=None if base is None else str(base))
    if cfg.distill and cfg.distill.teacher:
        d = cfg.distill
        check_teacher_tokenizer(d.teacher, datamodule.tokenizer)
        module = DistillationModule(teacher=d.teacher, temperature=d.temperature, kd_weight=d.kd_weight,
                                    ce_weight=d.ce_weight, **student)
        log.info("Distilling from %s (%.2fM parameters)", d.teacher, module.teacher.num_parameters() / 1e6)
    else:
        module = CausalLMModule(**student)
    log.info("Model: %s, %.2fM parameters (%.2fM without embeddings)", m.arch,
             module.model.num_parameters() / 1e6, module.model.num_parameters(exclude_embeddings=True) / 1e6)
    return module



def pretrain_callbacks(cfg: DictConfig, datamodule: PretrainDataModule, run_dir: Path) -> list[L.Callback]:
    """Task evals, text samples, inspection views and a mixture's per-source figures during pretraining (besides
    the callbacks of every run)."""
    return [
        TaskEval(datamodule.tokenizer, list(cfg.eval.tasks), cfg.eval.every_n_steps, cfg.eval.num_fewshot,
                 cfg.eval.limit),
        TextSamples(datamodule.tokenizer, list(cfg.samples.prompts), cfg.samples.every_n_steps,
                    cfg.samples.max_new_tokens, cfg.samples.temperature, cfg.samples.top_k, cfg.seed),
        InspectViews(datamodule.tokenizer, cfg.inspect.prompt, cfg.inspect.every_n_steps, run_dir / "inspect"),
        MixtureMetrics(),  # a data.mixture's per-source tokens and val/test figures (nothing without one)
    ]



def finish(cfg: DictConfig, run_dir: Path, trainer: L.Trainer, module: CausalLMModule,
           datamodule: PretrainDataModule, model, val: dict, test: dict, start: float,
           before: dict | None = None) -> dict:
    """Export, metrics.json, samples and the closing lines (rank 0)."""
    context = getattr(model.config, "max_position_embeddings", 0) or 0  # a base model's own (init_from)
    export_hf(model, datamodule.tokenizer, run_dir / "export", max_length=max(cfg.data.seq_len, context))
    throughput = next(c for c in trainer.callbacks if isinstance(c, ThroughputMFU))
    metrics = {
        "val": {k.split("/", 1)[1]: v for k, v in val.items()},
        "test": {k.split("/", 1)[1]: v for k, v in test.items()},
        "tokens_trained": datamodule.batches_consumed * cfg.data.batch_size * cfg.data.seq_len * trainer.world_size,
        "steps": trainer.global_step,
        "precision": str(trainer.precision),
        "host": host_description(trainer.strategy.root_device),
        "parameters": module.model.num_parameters(),
        "perf": {k.split("/", 1)[1]: v for k, v in throughput.last.items()},
        "energy_source": throughput.energy.source if throughput.energy else None,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "train_time_s": round(getattr(module, "train_time_s", 0.0), 1),
        "time_budget_s": budget_seconds(trainer),
        PREPARED_KEY: str(datamodule.prepared_dir),
    }
    if cfg.get("init_from"):
        metrics["init_from"] = str(cfg.init_from)
        if before is not None:
            metrics["val_before_training"] = before
    write_json(run_dir / METRICS, metrics)

    samples = generate(model, datamodule.tokenizer, list(cfg.samples.prompts), cfg.samples.max_new_tokens,
                       cfg.samples.temperature, cfg.samples.top_k, seed=cfg.seed)
    print("\n".join(["", "Samples:"] + [f"--- {s}" for s in samples]))
    print(f"\nval/bpb {metrics['val']['bpb']:.4f}  test/bpb {metrics['test']['bpb']:.4f}  "
          f"test/ppl {metrics['test']['ppl']:.2f}  ({metrics['tokens_trained']:,} tokens, {metrics['wall_time_s']}s"
          f"{_perf_line(metrics)})")
    if before is not None:
        print(f"val/bpb before training (init_from={cfg.init_from}): {before['bpb']:.4f}, after: "
              f"{metrics['val']['bpb']:.4f}")
    print(f"Outputs in {run_dir}: metrics.json, curves.png, checkpoints/, export/")
    if hint := sync_hint(trainer.logger):
        print(f"W&B run saved offline; upload it with: {hint}")
    return metrics




def train_time(trainer: L.Trainer, fit_seconds: float) -> float:
    """Seconds of training: the `Timer`'s (resumed runs included) under trainer.max_time, else this fit's."""
    clock = trainer_clock(trainer)
    return clock()[0] if clock is not None else fit_seconds


def budget_seconds(trainer: L.Trainer) -> float | None:
    clock = trainer_clock(trainer)
    return None if clock is None else round(clock()[1], 1)


def _perf_line(metrics: dict) -> str:
    """MFU and energy for the closing line, where measured."""
    perf, out = metrics["perf"], ""
    if "mfu" in perf:
        out += f", MFU {perf['mfu']:.1%}"
    if "energy_j" in perf:
        label = " (estimate)" if str(metrics.get("energy_source", "")).startswith("estimate") else ""
        out += (f", {perf['energy_kwh'] * 1000:.2f} Wh{label}, {perf['tokens_per_j']:,.0f} tokens/J, "
                f"{perf['co2_g']:.1f} g CO2")
    return out


def shared_run_dir(argv: list[str]) -> list[str]:
    """Under torchrun every rank starts the command on its own, and `outputs/<now>` can differ between them
    (by a second, or by a node): give them one run dir, named by the rendezvous id they share."""
    check_recipe_arg(argv)
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None or any(a.startswith(("hydra.run.dir=", "+hydra.run.dir=")) for a in argv):
        return argv
    if run_id == "none":  # torchrun's default --rdzv-id on several nodes
        raise SystemExit("error: under torchrun, give every rank the same hydra.run.dir=<folder> (or torchrun "
                         "--rdzv-id=<run name>): the ranks must share one run dir")
    return [*argv, f"hydra.run.dir=outputs/torchrun-{run_id}"]


main = hydra_main("train", train, argv_hook=shared_run_dir)


if __name__ == "__main__":
    main()
