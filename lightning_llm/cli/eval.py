"""`llm-eval model_path=EXPORT_OR_CKPT`: loss, perplexity and bits per byte on a text source, zero/few-shot
multiple-choice tasks, and generated answers scored on task files (as fine-tuning scores them); writes
eval.json in the run dir and prints a table."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import hydra_main
from lightning_llm.io import write_json

log = logging.getLogger("lightning_llm")


def evaluate(cfg: DictConfig) -> dict:
    from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
    from lightning_llm.evaluation.text import evaluate_text
    from lightning_llm.inference import load_model

    source = Path(cfg.model_path)
    model, tokenizer = load_model(source)
    results: dict = {"model": str(source), "data": None, "splits": {}, "tasks": {}}
    if cfg.splits:
        run_data, loaders = _text_loaders(cfg, source, model, tokenizer)
        results["data"] = str(run_data)
        for split, loader in loaders.items():
            results["splits"][split] = evaluate_text(model, loader, cfg.max_batches)
    for task in cfg.tasks:
        results["tasks"][Path(task).stem] = evaluate_task(model, tokenizer, load_task(task), cfg.num_fewshot,
                                                          cfg.seed, cfg.limit)
    if cfg.generation.files:
        results["generation"] = _generation(model, tokenizer, cfg.generation)
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


def _generation(model, tokenizer, g: DictConfig) -> dict[str, dict[str, float]]:
    """Greedy answers to each task file's prompts, scored against its references."""
    from lightning_llm.tasks.formats import to_examples
    from lightning_llm.tasks.gen_eval import answer
    from lightning_llm.tasks.gen_metrics import score
    from lightning_llm.tasks.records import files_of, read_lines, read_local

    out = {}
    for spec in g.files:
        files = files_of(spec, "generation.files")
        records = read_lines(files, "generation.files") if g.format == "lines" else read_local(files)
        examples = to_examples(records, g.format, g.column_map, g.template, g.system, g.source_lang,
                               g.target_lang)[:g.max_examples]
        predictions = answer(model, tokenizer, examples, g.max_new_tokens, g.batch_size)
        out[Path(files[0]).stem] = score(list(g.metrics), predictions, [e.references for e in examples])
    return out


def _text_loaders(cfg: DictConfig, source: Path, model, tokenizer) -> tuple[Path, dict]:
    """(prepared folder, {split: loader}): the training run's own splits, or the text the data keys name."""
    from torch.utils.data import DataLoader

    from lightning_llm.data import PretrainDataModule
    from lightning_llm.data.datamodule import split_dataset
    from lightning_llm.data.run_data import prepared_data_of, tokenizer_dir_of

    run_data = None if _data_overridden() else prepared_data_of(source)
    if run_data is not None:  # the very splits the model was validated and tested on
        log.info("Evaluating on the training run's prepared data %s (give data.* keys for other text)", run_data)
        eos = tokenizer.eos_token_id if cfg.data.get("document_mask") else None  # as the run was trained
        return run_data, {split: DataLoader(split_dataset(run_data, split, tokenizer, eos),
                                            batch_size=cfg.data.batch_size) for split in cfg.splits}
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["seq_len"] = min(data["seq_len"], model.config.max_position_embeddings)
    datamodule = PretrainDataModule(data, {"path": str(tokenizer_dir_of(source))}, cfg.paths.data_dir)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule.prepared_dir, {split: datamodule.eval_dataloader(split) for split in cfg.splits}


def _data_overridden() -> bool:
    """Whether the command line names other text than the training run's (batch sizes do not count)."""
    keys = [o.lstrip("+~").split("=", 1)[0] for o in HydraConfig.get().overrides.task]
    loading = ("data.batch_size", "data.eval_batch_size", "data.num_workers", "data.document_mask")
    return any(k in ("data", "paths.data_dir") or (k.startswith("data.") and k not in loading) for k in keys)


def _log(cfg: DictConfig, results: dict) -> None:
    from hydra.utils import instantiate

    from lightning_llm.training.tracking import sync_hint

    logger = instantiate(cfg.logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    flat = {f"eval/{split}/{k}": v for split, m in results["splits"].items() for k, v in m.items()}
    for group in ("tasks", "harness", "generation"):
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
    for task, m in results.get("generation", {}).items():
        rows.append(f"{task:<24}" + "  ".join(f"{k} {v:.2f}" for k, v in m.items()))
    return "\n".join(rows)


main = hydra_main("eval", evaluate)


if __name__ == "__main__":
    main()
