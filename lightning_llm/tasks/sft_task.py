"""task=sft (recipes qa, translate, summarize, sft): response-only fine-tuning, scored by generation."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lightning_llm.tasks.config import GenEvalConfig
from lightning_llm.tasks.gen_eval import GenerationEval, answer, baseline_answers
from lightning_llm.tasks.gen_metrics import score
from lightning_llm.tasks.sft_data import SFTDataModule
from lightning_llm.tasks.sft_module import SFTModule
from lightning_llm.tasks.task import FinetuneTask, TaskParts, plain, task_data


class SFTTask(FinetuneTask):
    name = "sft"

    def build(self, cfg: DictConfig, init_from: Path, run_dir: Path, resumed: bool) -> TaskParts:
        datamodule = SFTDataModule(task_data(cfg), init_from, seed=cfg.seed)
        datamodule.setup("fit")
        module = SFTModule(str(init_from), plain(cfg.optim), plain(cfg.lora), compile=cfg.model.compile,
                           activation_checkpointing=cfg.model.activation_checkpointing,
                           on_nonfinite_loss=cfg.on_nonfinite_loss)
        ev = GenEvalConfig(**plain(cfg.finetune.eval))
        gen_eval = GenerationEval({k: v for k, v in datamodule.examples.items() if k != "train"},
                                  datamodule.tokenizer, ev.metrics, ev.max_examples, ev.max_new_tokens, ev.batch_size,
                                  out_dir=run_dir, samples_shown=ev.samples_shown)
        baselines = {} if resumed else sft_baselines(module, datamodule, ev)
        return TaskParts(datamodule, module, baselines, [gen_eval], ["predictions_test.jsonl"], datamodule.stats)


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
