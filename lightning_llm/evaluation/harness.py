"""lm-evaluation-harness in process: its task library, run on our model object (optional extra `harness`).

`lm_eval`'s `HFLM` wraps a live `transformers` model, so a checkpoint is evaluated without exporting it
first and a model in training could be too. Tasks are any of the harness's names (where their datasets
can be downloaded) or YAML task files in `include_path` (e.g. over local JSON, see tests/).
"""

from __future__ import annotations

from pathlib import Path

from lightning_llm.errors import UserError


def run_harness(model, tokenizer, tasks: list[str], num_fewshot: int | None = None, limit: int | float | None = None,
                include_path: str | Path | None = None, batch_size: int = 8, seed: int = 1234) -> dict[str, dict]:
    """{task: {metric: value}} as lm-evaluation-harness reports them (e.g. acc, acc_norm and their stderr)."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise UserError("harness.tasks needs lm-evaluation-harness: pip install 'lightning_llm[harness]'") from e
    if include_path is not None and not Path(include_path).exists():
        raise UserError(f"harness.include_path={include_path} does not exist")
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        raise UserError(f"lm-evaluation-harness has no task {unknown}: check the names (lm_eval ls tasks) or "
                        "set harness.include_path to the folder of your task YAML files")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
              max_length=getattr(model.config, "max_position_embeddings", None), device=str(model.device))
    out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit,
                                  task_manager=manager, log_samples=False, bootstrap_iters=0,
                                  random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                  fewshot_random_seed=seed)
    return {task: {k.split(",")[0]: v for k, v in metrics.items() if k != "alias" and isinstance(v, int | float)}
            for task, metrics in out["results"].items()}
