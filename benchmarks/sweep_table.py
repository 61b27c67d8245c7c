"""The table of an `llm-train -m` sweep (or any folder of run dirs): each run's overrides, validation bits per
byte, steps, tokens and training seconds, best first.

    llm-train -m ++trainer.max_time=00:00:01:56 model.config.hidden_size=128,192 hydra.sweep.dir=SWEEP
    python -m benchmarks.sweep_table SWEEP [--drop KEY ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def runs(root: Path) -> list[dict]:
    out = []
    for metrics in sorted(root.rglob("metrics.json")):
        run = metrics.parent
        m = json.loads(metrics.read_text())
        overrides_file = run / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else [run.name]
        out.append({"run": run, "overrides": overrides, "val_bpb": m["val"]["bpb"], "steps": m["steps"],
                    "tokens": m["tokens_trained"], "train_s": m.get("train_time_s"),
                    "parameters": m.get("parameters")})
    return sorted(out, key=lambda r: r["val_bpb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="+")
    parser.add_argument("--drop", nargs="*", default=["hydra.", "logger=", "paths.", "trainer.max_steps="],
                        help="override prefixes not shown (the ones every run shares)")
    args = parser.parse_args()
    rows = [r for root in args.root for r in runs(root)]
    rows.sort(key=lambda r: r["val_bpb"])
    print("| overrides | parameters | steps | tokens | train s | val bpb |\n|---|---|---|---|---|---|")
    for r in rows:
        shown = " ".join(o for o in r["overrides"] if not o.lstrip("+").startswith(tuple(args.drop)))
        print(f"| `{shown or '(defaults)'}` | {r['parameters'] / 1e6:.2f}M | {r['steps']:,} | {r['tokens']:,} | "
              f"{r['train_s']} | {r['val_bpb']:.4f} |")


if __name__ == "__main__":
    main()
