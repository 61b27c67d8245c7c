"""`llm-eval model_path=EXPORT_OR_CKPT`: loss, perplexity and bits per byte on a text source, plus
zero/few-shot multiple-choice tasks; writes eval.json in the run dir and prints a table."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import CONF_DIR, quiet_third_party_logs, run_safely
from lightning_llm.io import write_json


def evaluate(cfg: DictConfig) -> dict:
    from lightning_llm.checkpoint_export import tokenizer_dir_of
    from lightning_llm.data import PretrainDataModule
    from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
    from lightning_llm.evaluation.text import evaluate_text
    from lightning_llm.loading import load_model

    source = Path(cfg.model_path)
    model, tokenizer = load_model(source)
    tokenizer_dir = tokenizer_dir_of(source) if source.suffix == ".ckpt" else source
    results: dict = {"model": str(source), "splits": {}, "tasks": {}}
    if cfg.splits:
        data = OmegaConf.to_container(cfg.data, resolve=True)
        data["seq_len"] = min(data["seq_len"], model.config.max_position_embeddings)
        datamodule = PretrainDataModule(data, {"path": str(tokenizer_dir)}, cfg.paths.data_dir)
        datamodule.prepare_data()
        datamodule.setup()
        for split in cfg.splits:
            loader = datamodule.eval_dataloader(split)
            results["splits"][split] = evaluate_text(model, loader, cfg.max_batches)
    for task in cfg.tasks:
        results["tasks"][Path(task).stem] = evaluate_task(model, tokenizer, load_task(task), cfg.num_fewshot,
                                                          cfg.seed, cfg.limit)
    if cfg.harness.tasks:
        from lightning_llm.evaluation.harness import run_harness

        h = cfg.harness
        results["harness"] = run_harness(model, tokenizer, list(h.tasks), h.num_fewshot, h.limit, h.include_path,
                                         h.batch_size, cfg.seed)
    write_json(Path(cfg.paths.output_dir) / "eval.json", results)
    print(_table(results))
    if cfg.get("logger"):
        _log(cfg, results)
    return results


def _log(cfg: DictConfig, results: dict) -> None:
    from hydra.utils import instantiate

    from lightning_llm.tracking import sync_hint

    logger = instantiate(cfg.logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    flat = {f"eval/{split}/{k}": v for split, m in results["splits"].items() for k, v in m.items()}
    for group in ("tasks", "harness"):
        flat |= {f"eval/{task}/{k}": v for task, m in results.get(group, {}).items() for k, v in m.items()}
    logger.log_metrics(flat, step=0)
    if hasattr(logger, "log_table"):
        logger.log_table("eval/results", columns=["metric", "value"], data=[[k, v] for k, v in flat.items()])
    logger.finalize("success")
    if hint := sync_hint(logger):
        print(f"W&B run saved offline; upload it with: {hint}")


def _table(results: dict) -> str:
    rows = [f"{'split / task':<24}{'loss':>8}{'ppl':>10}{'bpb':>8}{'acc':>8}{'acc_norm':>10}"]
    for split, m in results["splits"].items():
        rows.append(f"{split:<24}{m['loss']:>8.4f}{m['ppl']:>10.2f}{m.get('bpb', float('nan')):>8.4f}")
    for task, m in [*results["tasks"].items(), *results.get("harness", {}).items()]:
        rows.append(f"{task:<24}{'':>26}{m.get('acc', float('nan')):>8.3f}{m.get('acc_norm', float('nan')):>10.3f}")
    return "\n".join(rows)


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    run_safely(evaluate, cfg)


if __name__ == "__main__":
    main()
