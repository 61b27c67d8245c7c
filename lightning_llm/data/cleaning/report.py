"""Turn datatrove's per-step stats into our cleaning report: documents and characters in and out of
every step, each drop with its reason, and totals that add up (nothing lost silently)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

_DEDUP_REASON = {"exact": "exact_duplicate", "MinHash": "near_duplicate"}


def _value(v: Any) -> float:
    return v.get("total", 0) if isinstance(v, dict) else v


def _step_name(raw: str) -> str:
    """'🔻 - FILTER: 🥇 Gopher Quality' -> 'gopher quality'."""
    name = raw.split(":", 1)[-1]
    return re.sub(r"[^\w\s-]", "", name).strip().lower()


def build_report(stages, outputs: dict[str, Path]) -> dict:
    steps: dict[str, dict] = {}
    reader_drops: Counter = Counter()
    records_in = 0
    for stage in stages:
        if stage.kind == "internal":
            continue
        for entry in merged_stats(stage.logging_dir):
            raw, stats = entry["name"], {k: _value(v) for k, v in entry["stats"].items()}
            if "READER" in raw:
                if stage.kind == "steps":
                    drops = {k.removeprefix("dropped_"): int(v) for k, v in stats.items() if k.startswith("dropped_")}
                    reader_drops.update(drops)
                    records_in += int(stats.get("documents", 0)) + sum(drops.values())
                    _add(steps, "read", int(stats.get("documents", 0)) + sum(drops.values()),
                         int(stats.get("documents", 0)), int(stats.get("doc_len", 0)), drops,
                         repaired_invalid_utf8=int(stats.get("repaired_invalid_utf8", 0)))
                continue
            if "WRITER" in raw or "total" not in stats:
                continue
            name = _step_name(raw)
            dedup = next((r for key, r in _DEDUP_REASON.items() if key in raw), None)
            name = dedup.replace("_duplicate", "_dedup") if dedup else name
            total = int(stats["total"])
            dropped = {k.removeprefix("dropped_"): int(v) for k, v in stats.items() if k.startswith("dropped_")}
            unexplained = int(stats.get("dropped", 0)) - sum(dropped.values())
            if unexplained > 0:
                dropped[dedup or "filtered"] = dropped.get(dedup or "filtered", 0) + unexplained
            out = total - sum(dropped.values())
            lines = {k: int(v) for k, v in stats.items() if k.startswith("line-filter") or k == "eval_duplicates_kept"}
            _add(steps, name, total, out, int(stats.get("doc_len", 0)) if "forwarded" in stats else 0, dropped,
                 **lines)
    kept = {split: _count_docs(folder) for split, folder in outputs.items()}
    dropped_total: Counter = Counter()
    for s in steps.values():
        dropped_total.update(s["dropped"])
    return {
        "records_in": records_in,
        "documents_out": sum(d for d, _ in kept.values()),
        "bytes_out": sum(b for _, b in kept.values()),
        "dropped": dict(dropped_total.most_common()),
        "splits": {split: {"documents": d, "bytes": b} for split, (d, b) in kept.items()},
        "steps": list(steps.values()),
    }


def merged_stats(logging_dir: Path) -> list[dict]:
    """Stats of every task of a stage, including tasks finished by an earlier, interrupted run (datatrove's
    own stats.json only covers the tasks of the last run)."""
    from datatrove.utils.stats import PipelineStats

    files = sorted((logging_dir / "stats").glob("*.json"))
    per_task = [PipelineStats.from_json(json.loads(f.read_text())) for f in files]
    return json.loads(sum(per_task, start=PipelineStats()).to_json()) if per_task else []


def _add(steps: dict, name: str, docs_in: int, docs_out: int, chars_out: int, dropped: dict,
         **extra: int) -> None:
    s = steps.setdefault(name, {"step": name, "documents_in": 0, "documents_out": 0, "chars_out": None,
                                "dropped": Counter()})
    s["documents_in"] += docs_in
    s["documents_out"] += docs_out
    if chars_out:  # known where datatrove measured the documents a step let through
        s["chars_out"] = (s["chars_out"] or 0) + chars_out
    s["dropped"].update(dropped)
    for k, v in extra.items():
        s[k] = s.get(k, 0) + v


def _count_docs(folder: Path) -> tuple[int, int]:
    docs = size = 0
    for f in sorted(folder.glob("*.jsonl")):
        with f.open("rb") as fh:
            for line in fh:
                docs += 1
                size += len(json.loads(line)["text"].encode())
    return docs, size


def format_table(report: dict) -> str:
    """The report as a small console table."""
    rows = [f"{'step':<22}{'docs in':>10}{'docs out':>10}  dropped (reason: count)"]
    for s in report["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in dict(s["dropped"]).items()) or "-"
        rows.append(f"{s['step']:<22}{s['documents_in']:>10,}{s['documents_out']:>10,}  {reasons}")
    rows.append(f"{'total':<22}{report['records_in']:>10,}{report['documents_out']:>10,}  "
                f"{report['bytes_out'] / 1e6:.2f} MB of text")
    return "\n".join(rows)


def log_to_wandb(report: dict, run) -> None:
    """The report in a W&B run: a table of steps and a bar chart of drop reasons."""
    import wandb

    steps = wandb.Table(columns=["step", "documents_in", "documents_out", "dropped"])
    for s in report["steps"]:
        steps.add_data(s["step"], s["documents_in"], s["documents_out"], json.dumps(dict(s["dropped"])))
    reasons = wandb.Table(columns=["reason", "documents"], data=[[r, n] for r, n in report["dropped"].items()])
    # at step 0, where training's first metrics go too: W&B drops data logged at a step below its current one
    run.log({"data/cleaning_steps": steps,
             "data/dropped_by_reason": wandb.plot.bar(reasons, "reason", "documents", title="Documents dropped")},
            step=0)
    run.summary.update({"data/records_in": report["records_in"], "data/documents_out": report["documents_out"],
                        "data/bytes_out": report["bytes_out"]})
