"""The cleaning suite as datatrove pipelines: per-document steps per split, then exact and near
dedup across the whole corpus. Each stage runs under an executor (local processes by default) that
records completed tasks, so a killed run resumes without redoing finished shards."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep

from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.report import build_report
from lightning_llm.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    logging_dir: Path
    kind: str  # "steps" (per-document steps of one split) or "dedup"


def document_steps(cfg: CleaningConfig, dropped_dir: Path | None) -> list[PipelineStep]:
    """The per-document steps, in order, as configured."""
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    from lightning_llm.data.cleaning import steps as s

    def excluded(name: str):
        if dropped_dir is None:
            return {}
        from datatrove.pipeline.writers import JsonlWriter

        return {"exclusion_writer": JsonlWriter(str(dropped_dir / name), compression=None, expand_metadata=True)}

    length = dict(cfg.length or {})
    # an oversized document is dropped before any step spends time on it; "empty" is judged after cleaning
    too_long = {"min_chars": 0, "max_chars": length.pop("max_chars")} if length.get("max_chars") else None
    plan: list[tuple[Any, Callable[..., PipelineStep], bool]] = [
        (too_long, s.LengthFilter, True),
        (cfg.html, s.HtmlToText, True), (cfg.gutenberg, s.GutenbergBoilerplate, False),
        (cfg.normalize, s.Normalize, False), (length if cfg.length is not None else None, s.LengthFilter, True),
        (cfg.c4_lines, C4QualityFilter, True), (cfg.gopher_quality, GopherQualityFilter, True),
        (cfg.gopher_repetition, GopherRepetitionFilter, True), (cfg.language, s.LanguageFilter, True),
        (cfg.pii, s.MaskPII, False),
    ]
    out = []
    for args, step, is_filter in plan:
        if args is None:
            continue
        kwargs = {**_tuples(args), **(excluded(step.__name__) if is_filter else {})}
        try:
            out.append(step(**kwargs))
        except TypeError as e:
            raise UserError(f"data.cleaning: {step.__name__} does not take these arguments {args}: {e}") from e
    return out


def clean_corpus(readers: dict[str, PipelineStep], cfg: CleaningConfig, work_dir: Path, tasks: int = 1,
                 workers: int | None = None) -> tuple[dict[str, Path], dict]:
    """Clean each split's documents, dedup across splits; returns each split's JSONL folder and the report."""
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    stages: list[Stage] = []
    dropped = work_dir / "dropped" if cfg.write_dropped else None
    clean = work_dir / "clean"
    for split, reader in readers.items():
        stage = Stage(f"clean/{split}", work_dir / "logs" / "clean" / split, "steps")
        writer = JsonlWriter(str(clean), output_filename=f"{split}/${{rank}}.jsonl", compression=None,
                             expand_metadata=True)
        _run(cfg, [reader, *document_steps(cfg, dropped), writer], tasks, workers, stage)
        stages.append(stage)
    current = clean

    def reader_of(folder: Path):
        return JsonlReader(str(folder), glob_pattern="*/*.jsonl", compression=None)

    def writer_to(folder: Path):
        return JsonlWriter(str(folder), output_filename="${split}/${rank}.jsonl", compression=None,
                           expand_metadata=True)

    if cfg.exact_dedup and _has_files(current):
        current = _exact_dedup(cfg, current, work_dir, reader_of, writer_to, tasks, workers, stages, dropped)
    if cfg.near_dedup is not None and _has_files(current):
        current = _near_dedup(cfg, current, work_dir, reader_of, writer_to, tasks, workers, stages, dropped)
    outputs = {split: current / split for split in readers}
    return outputs, build_report(stages, outputs)


def _exact_dedup(cfg, current, work_dir, reader_of, writer_to, tasks, workers, stages, dropped) -> Path:
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )

    config = ExactDedupConfig(content_getter=_text)
    base, out = work_dir / "exact", work_dir / "exact_kept"
    _run(cfg, [reader_of(current), ExactDedupSignature(str(base / "sigs"), config)], tasks, workers,
         Stage("exact_dedup/signatures", work_dir / "logs" / "exact" / "sigs", "internal"))
    _run(cfg, [ExactFindDedups(str(base / "sigs"), str(base / "dups"), config)], 1, 1,
         Stage("exact_dedup/find", work_dir / "logs" / "exact" / "find", "internal"))
    stage = Stage("exact_dedup", work_dir / "logs" / "exact" / "filter", "dedup")
    exclusion = _exclusion(dropped, "exact_dedup")
    _run(cfg, [reader_of(current), ExactDedupFilter(str(base / "dups"), config, **exclusion), writer_to(out)],
         tasks, workers, stage)
    stages.append(stage)
    return out


def _near_dedup(cfg, current, work_dir, reader_of, writer_to, tasks, workers, stages, dropped) -> Path:
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )

    args = dict(cfg.near_dedup)
    threshold, rows = args.pop("threshold", 0.8), args.pop("hashes_per_bucket", 8)
    # LSH with b bands of r rows keeps pairs above ~(1/b)^(1/r): solve for b at the asked threshold
    buckets = max(1, round((1 / threshold) ** rows))
    config = MinhashConfig(n_grams=args.pop("n_grams", 5), num_buckets=buckets, hashes_per_bucket=rows, **args)
    base, out = work_dir / "minhash", work_dir / "kept"
    logs = work_dir / "logs" / "minhash"
    _run(cfg, [reader_of(current), MinhashDedupSignature(str(base / "sigs"), config=config)], tasks, workers,
         Stage("near_dedup/signatures", logs / "sigs", "internal"))
    _run(cfg, [MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=config)], buckets, workers,
         Stage("near_dedup/buckets", logs / "buckets", "internal"))
    _run(cfg, [MinhashDedupCluster(str(base / "buckets"), str(base / "remove_ids"), config=config)], 1, 1,
         Stage("near_dedup/cluster", logs / "cluster", "internal"))
    stage = Stage("near_dedup", logs / "filter", "dedup")
    exclusion = _exclusion(dropped, "near_dedup")
    _run(cfg, [reader_of(current), MinhashDedupFilter(str(base / "remove_ids"), **exclusion), writer_to(out)],
         tasks, workers, stage)
    stages.append(stage)
    return out


def _exclusion(dropped: Path | None, name: str) -> dict:
    if dropped is None:
        return {}
    from datatrove.pipeline.writers import JsonlWriter

    return {"exclusion_writer": JsonlWriter(str(dropped / name), compression=None, expand_metadata=True)}


def _run(cfg: CleaningConfig, pipeline: list, tasks: int, workers: int | None, stage: Stage) -> None:
    if cfg.executor:
        from hydra.utils import instantiate

        executor = instantiate(cfg.executor, pipeline=pipeline, tasks=tasks, logging_dir=str(stage.logging_dir))
    else:
        from datatrove.executor import LocalPipelineExecutor

        # fork: workers inherit the redirected stderr below (forkserver workers would print to the console)
        executor = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(tasks, workers or 1),
                                         logging_dir=str(stage.logging_dir), start_method="fork")
    stage.logging_dir.mkdir(parents=True, exist_ok=True)
    # datatrove logs every task at INFO to stderr; keep that in the stage's log folder, not the console
    from loguru import logger

    with open(stage.logging_dir / "console.log", "a") as sink, contextlib.redirect_stderr(sink):
        logger.remove()
        logger.add(sink, level="INFO")
        executor.run()
    _quiet_datatrove()
    done = len(list((stage.logging_dir / "completions").glob("*")))
    if done < tasks:
        raise UserError(f"cleaning stage {stage.name} finished {done}/{tasks} tasks (logs: {stage.logging_dir}); "
                        "if it runs on a cluster, run the command again when its jobs have finished")


def _quiet_datatrove() -> None:
    """After a stage, datatrove's logger still points at the closed stage log: warnings only, to stderr."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _text(doc) -> str:
    """What exact dedup hashes: the text after the normalize step (module level: workers pickle it)."""
    return doc.text


def _has_files(folder: Path) -> bool:
    return any(folder.glob("*/*.jsonl"))


def _tuples(args: dict) -> dict:
    """Hydra gives lists where datatrove's n-gram settings want tuples of (n, fraction)."""
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) and v
            and isinstance(v[0], list) else v for k, v in args.items()}

