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
    losses: dict[str, dict[str, dict]] = {}  # split -> step -> characters judged and dropped
    for stage in stages:
        if stage.kind == "internal":
            continue
        split = stage.name.split("/", 1)[1] if stage.kind == "steps" else "train"  # dedup only drops train text
        for entry in merged_stats(stage.logging_dir):
            raw, stats = entry["name"], {k: _value(v) for k, v in entry["stats"].items()}
            if "READER" in raw:
                if stage.kind == "steps":
                    drops = {k.removeprefix("dropped_"): int(v) for k, v in stats.items() if k.startswith("dropped_")}
                    reader_drops.update(drops)
                    records_in += int(stats.get("documents", 0)) + sum(drops.values())
                    _add(steps, "read", int(stats.get("documents", 0)) + sum(drops.values()),
                         int(stats.get("documents", 0)), int(stats.get("doc_len", 0)), drops,
                         repaired_invalid_utf8=int(stats.get("repaired_invalid_utf8", 0)),
                         **{k: int(v) for k, v in stats.items() if k.startswith("decoded_")})
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
            lines = {k: int(v) for k, v in stats.items() if k.startswith("line-filter") or k == "eval_duplicates_kept"
                     or k in ("units", "chars_removed_by_lines") or (k.startswith("profile_") and k[8:].isalpha())}
            _add(steps, name, total, out, int(stats.get("doc_len", 0)) if "forwarded" in stats else 0, dropped,
                 **lines)
            _add_chars(steps[name], losses.setdefault(split, {}), stats)
    kept = {split: _count_docs(folder) for split, folder in outputs.items()}
    dropped_total: Counter = Counter()
    for s in steps.values():
        dropped_total.update(s["dropped"])
    for s in steps.values():
        for key in ("dropped", "units_dropped", "chars_dropped"):
            if key in s:
                s[key] = dict(Counter(s[key]).most_common())
    return {
        "records_in": records_in,
        "documents_out": sum(k["documents"] for k in kept.values()),
        "units_out": sum(k["units"] for k in kept.values()),
        "bytes_out": sum(k["bytes"] for k in kept.values()),
        "dropped": dict(dropped_total.most_common()),
        "splits": {split: {**k, "text_chars": _text_chars(losses.get(split, {}))} for split, k in kept.items()},
        "losses": losses,
        "steps": list(steps.values()),
    }


def merge_reports(reports: dict[str, dict]) -> dict:
    """A mixture's report: each source's steps and drop reasons under its name ("plays: gopher quality",
    "plays/too_short"), the totals summed, and each source's whole report under `sources`."""
    merged: dict[str, Any] = {"records_in": 0, "documents_out": 0, "units_out": 0, "bytes_out": 0, "dropped": {},
                              "warnings": [], "steps": [], "sources": reports}
    for name, report in reports.items():
        for key in ("records_in", "documents_out", "units_out", "bytes_out"):
            merged[key] += report[key]
        merged["dropped"].update({f"{name}/{reason}": n for reason, n in report["dropped"].items()})
        merged["steps"] += [{**step, "step": f"{name}: {step['step']}"} for step in report["steps"]]
        merged["warnings"] += [{**w, "step": f"{name}: {w['step']}"} for w in report.get("warnings", [])]
    return merged


def _add_chars(step: dict, split_losses: dict, stats: dict) -> None:
    """Units and characters dropped by reason, into the step's row and into the split's losses."""
    units = {k.removeprefix("units_dropped_"): int(v) for k, v in stats.items() if k.startswith("units_dropped_")}
    chars = {k.removeprefix("chars_dropped_"): int(v) for k, v in stats.items() if k.startswith("chars_dropped_")}
    if stats.get("chars_removed_by_lines"):
        chars["line_rules"] = int(stats["chars_removed_by_lines"])
    if units:
        step.setdefault("units_dropped", Counter()).update(units)
    if chars:
        step.setdefault("chars_dropped", Counter()).update(chars)
    if "chars_in" in stats or chars:
        row = split_losses.setdefault(step["step"], {"chars_in": 0, "chars_dropped": {}})
        row["chars_in"] += int(stats.get("chars_in", 0))
        for reason, n in chars.items():
            row["chars_dropped"][reason] = row["chars_dropped"].get(reason, 0) + n


def _text_chars(losses: dict) -> int:
    """The characters of a split's text after extraction and normalization (what the rules judge)."""
    return max((row["chars_in"] for step, row in losses.items() if step != "max length"), default=0)


def mass_losses(report: dict, threshold: float) -> list[dict]:
    """Steps that dropped more than `threshold` of a split's characters, with their top reasons."""
    out = []
    for split, steps in report.get("losses", {}).items():
        total = report["splits"].get(split, {}).get("text_chars") or 0
        for step, row in steps.items():
            dropped = sum(row["chars_dropped"].values())
            if total and dropped > threshold * total:
                top = sorted(row["chars_dropped"].items(), key=lambda kv: -kv[1])[:3]
                out.append({"split": split, "step": step, "share": round(dropped / total, 4),
                            "reasons": {r: round(n / total, 4) for r, n in top}})
    return out


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


def _count_docs(folder: Path) -> dict[str, int]:
    """Documents (a cut document counts once), units (its kept sections) and UTF-8 bytes of a split."""
    docs = units = size = 0
    last = None
    for f in sorted(folder.glob("*.jsonl")):
        with f.open("rb") as fh:
            for line in fh:
                record = json.loads(line)
                units += 1
                size += len(record["text"].encode())
                parent = record.get("document")
                docs += parent is None or parent != last
                last = parent
    return {"documents": docs, "units": units, "bytes": size}


def format_table(report: dict) -> str:
    """The report as a small console table."""
    w = max([22] + [len(s["step"]) + 2 for s in report["steps"]])
    rows = [f"{'step':<{w}}{'docs in':>10}{'docs out':>10}  dropped (reason: count)"]
    for s in report["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in dict(s["dropped"]).items()) or "-"
        rows.append(f"{s['step']:<{w}}{s['documents_in']:>10,}{s['documents_out']:>10,}  {reasons}")
    rows.append(f"{'total':<{w}}{report['records_in']:>10,}{report['documents_out']:>10,}  "
                f"{report['bytes_out'] / 1e6:.2f} MB of text")
    for rules in (s for s in report["steps"] if s["step"].endswith("quality rules")):
        profiles = {k.removeprefix("profile_"): v for k, v in rules.items() if k.startswith("profile_")}
        source = rules["step"].removesuffix("quality rules")  # "plays: " in a mixture's report
        rows.append(f"{source}profiles: " + ", ".join(f"{k} {v:,} documents" for k, v in profiles.items()))
        if rules.get("units_dropped") or rules.get("units", 0) > rules["documents_in"]:
            dropped = ", ".join(f"{k}: {v}" for k, v in rules.get("units_dropped", {}).items()) or "none"
            rows.append(f"units judged: {rules.get('units', 0):,}; units dropped: {dropped}")
    for w in report.get("warnings", []):
        rows.append(f"WARNING: {w['step']} dropped {w['share']:.0%} of the {w['split']} split's characters")
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
