"""`llm-eval model_path=EXPORT_OR_CKPT`: loss, perplexity and bits per byte on a text source, plus
zero/few-shot multiple-choice tasks; writes eval.json in the run dir and prints a table."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import CONF_DIR, quiet_third_party_logs, run_safely
from lightning_llm.errors import UserError
from lightning_llm.io import write_json


def evaluate(cfg: DictConfig) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lightning_llm.checkpoint_export import load_checkpoint, tokenizer_dir_of
    from lightning_llm.data import PretrainDataModule
    from lightning_llm.evaluation.multiple_choice import evaluate_task, load_task
    from lightning_llm.evaluation.text import evaluate_text

    source = Path(cfg.model_path)
    if source.suffix == ".ckpt":
        model, tokenizer = load_checkpoint(source)
        tokenizer_dir = tokenizer_dir_of(source)
    elif (source / "config.json").is_file():
        model, tokenizer = AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)
        tokenizer_dir = source
    else:
        raise UserError(f"model_path={source} is neither a .ckpt nor a model folder with config.json")
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
    write_json(Path(cfg.paths.output_dir) / "eval.json", results)
    print(_table(results))
    return results


def _table(results: dict) -> str:
    rows = [f"{'split / task':<24}{'loss':>8}{'ppl':>10}{'bpb':>8}{'acc':>8}{'acc_norm':>10}"]
    for split, m in results["splits"].items():
        rows.append(f"{split:<24}{m['loss']:>8.4f}{m['ppl']:>10.2f}{m.get('bpb', float('nan')):>8.4f}")
    for task, m in results["tasks"].items():
        rows.append(f"{task:<24}{'':>26}{m['acc']:>8.3f}{m['acc_norm']:>10.3f}")
    return "\n".join(rows)


@hydra.main(config_path=CONF_DIR, config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    quiet_third_party_logs()
    run_safely(evaluate, cfg)


if __name__ == "__main__":
    main()
