"""The cleaning suite as datatrove pipelines: per-document steps per split, then exact and near
dedup across the whole corpus. Each stage runs under an executor (local processes by default) that
records completed tasks, so a killed run resumes without redoing finished shards."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
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
    from lightning_llm.data.cleaning import steps as s
    from lightning_llm.data.cleaning.rules import QualityRules

    length = dict(cfg.length or {})
    # an oversized document is dropped before any step spends time on it; "empty" is judged after cleaning
    too_long = {"min_chars": 0, "max_chars": length.pop("max_chars")} if length.get("max_chars") else None
    length.pop("max_chars", None)
    rules = {"profile": cfg.profile, "unit_chars": (cfg.units or {}).get("max_chars"),
             "overrides": {"c4_lines": cfg.c4_lines, "gopher_quality": cfg.gopher_quality,
                           "gopher_repetition": cfg.gopher_repetition}}
    plan: list[tuple[Any, Callable[..., PipelineStep], bool]] = [
        (too_long, s.LengthFilter, True),
        (cfg.html, s.HtmlToText, True), (cfg.gutenberg, s.GutenbergBoilerplate, False),
        (cfg.normalize, s.Normalize, False), (length if cfg.length is not None else None, s.LengthFilter, True),
        (rules, QualityRules, True), (cfg.language, s.LanguageFilter, True), (cfg.pii, s.MaskPII, False),
    ]
    out = []
    for args, step, is_filter in plan:
        if args is None:
            continue
        kwargs = {**args, **(_exclusion(dropped_dir, step.__name__) if is_filter else {})}
        try:
            out.append(step(**kwargs))
        except TypeError as e:
            raise UserError(f"data.cleaning: {step.__name__} does not take these arguments {args}: {e}") from e
    return out


@dataclass
class _Corpus:
    """Runs the stages over a corpus in `work_dir`, recording the ones that count in the report."""

    cfg: CleaningConfig
    work_dir: Path
    tasks: int
    workers: int | None
    dropped: Path | None
    stages: list[Stage] = field(default_factory=list)

    def run(self, name: str, pipeline: list, logs: Path, kind: str = "internal", tasks: int | None = None,
            workers: int | None = None) -> None:
        stage = Stage(name, self.work_dir / "logs" / logs, kind)
        _run(self.cfg, pipeline, tasks or self.tasks, workers or self.workers, stage)
        if kind != "internal":
            self.stages.append(stage)

    def filter(self, name: str, current: Path, dedup_filter: Callable[..., PipelineStep], out: Path,
               logs: Path) -> Path:
        """Read `current`, drop what `dedup_filter` flags (counted as `name`), write the rest to `out`."""
        from datatrove.pipeline.readers import JsonlReader
        from datatrove.pipeline.writers import JsonlWriter

        reader = JsonlReader(str(current), glob_pattern="*/*.jsonl", compression=None)
        writer = JsonlWriter(str(out), output_filename="${split}/${rank}.jsonl", compression=None,
                             expand_metadata=True)
        self.run(name, [reader, dedup_filter(**_exclusion(self.dropped, name)), writer], logs, "dedup")
        return out

    def signatures(self, name: str, current: Path, step: PipelineStep, logs: Path) -> None:
        from datatrove.pipeline.readers import JsonlReader

        self.run(name, [JsonlReader(str(current), glob_pattern="*/*.jsonl", compression=None), step], logs)


def clean_corpus(readers: dict[str, PipelineStep], cfg: CleaningConfig, work_dir: Path, tasks: int = 1,
                 workers: int | None = None) -> tuple[dict[str, Path], dict]:
    """Clean each split's documents, dedup across splits; returns each split's JSONL folder and the report."""
    from datatrove.pipeline.writers import JsonlWriter

    corpus = _Corpus(cfg, work_dir, tasks, workers, work_dir / "dropped" if cfg.write_dropped else None)
    current = work_dir / "clean"
    for split, reader in readers.items():
        writer = JsonlWriter(str(current), output_filename=f"{split}/${{rank}}.jsonl", compression=None,
                             expand_metadata=True)
        corpus.run(f"clean/{split}", [reader, *document_steps(cfg, corpus.dropped), writer],
                   Path("clean") / split, "steps")
    if cfg.exact_dedup and _has_files(current):
        current = _exact_dedup(corpus, current)
    if cfg.near_dedup is not None and _has_files(current):
        current = _near_dedup(corpus, current)
    outputs = {split: current / split for split in readers}
    return outputs, build_report(corpus.stages, outputs)


def _exact_dedup(corpus: _Corpus, current: Path) -> Path:
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupSignature, ExactFindDedups

    from lightning_llm.data.cleaning.dedup import ExactDedupKeepEval, priority

    config = ExactDedupConfig(content_getter=_text, document_priority=priority)
    sigs, dups = corpus.work_dir / "exact" / "sigs", corpus.work_dir / "exact" / "dups"
    corpus.signatures("exact_dedup/signatures", current, ExactDedupSignature(str(sigs), config), Path("exact") / "sigs")
    corpus.run("exact_dedup/find", [ExactFindDedups(str(sigs), str(dups), config)], Path("exact") / "find",
               tasks=1, workers=1)
    return corpus.filter("exact_dedup", current, partial(ExactDedupKeepEval, str(dups), config),
                         corpus.work_dir / "exact_kept", Path("exact") / "filter")


def _near_dedup(corpus: _Corpus, current: Path) -> Path:
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupSignature,
    )

    from lightning_llm.data.cleaning.dedup import MinhashDedupKeepEval

    args = dict(corpus.cfg.near_dedup or {})
    threshold, rows = args.pop("threshold", 0.8), args.pop("hashes_per_bucket", 8)
    # LSH with b bands of r rows keeps pairs above ~(1/b)^(1/r): solve for b at the asked threshold
    buckets = max(1, round((1 / threshold) ** rows))
    config = MinhashConfig(n_grams=args.pop("n_grams", 5), num_buckets=buckets, hashes_per_bucket=rows, **args)
    base, logs = corpus.work_dir / "minhash", Path("minhash")
    corpus.signatures("near_dedup/signatures", current, MinhashDedupSignature(str(base / "sigs"), config=config),
                      logs / "sigs")
    corpus.run("near_dedup/buckets", [MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=config)],
               logs / "buckets", tasks=buckets)
    corpus.run("near_dedup/cluster", [MinhashDedupCluster(str(base / "buckets"), str(base / "remove_ids"),
                                                          config=config)], logs / "cluster", tasks=1, workers=1)
    return corpus.filter("near_dedup", current, partial(MinhashDedupKeepEval, str(base / "remove_ids")),
                         corpus.work_dir / "kept", logs / "filter")


def _exclusion(dropped: Path | None, name: str) -> dict:
    """Where a filter writes what it drops, with the reason, when `write_dropped` is on."""
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
