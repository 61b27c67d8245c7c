"""Distillation against training from scratch: the same half-size student, data, tokenizer, seed and steps,
with and without the teacher, side by side; the teacher's own figures as the reference row.

    python -m benchmarks.distill --teacher-run outputs/DATE/TIME      # an llm-train run of recipe=shakespeare_4x256

Runs `llm-train recipe=distill` three times: distilled, from scratch, and from scratch again for as many more
steps as distillation's extra wall time would buy (equal compute); extra Hydra overrides after `--` go to every
run (e.g. `-- trainer.max_steps=300`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def train(overrides: list[str], run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", "recipe=distill", "logger=none",
           f"hydra.run.dir={run_dir}", *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-run", type=Path, required=True, help="llm-train run dir with export/ and metrics.json")
    p.add_argument("--out", type=Path, default=None, help="where the two student runs go (default: a temp dir)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for both runs")
    args = p.parse_args()
    export = args.teacher_run.resolve() / "export"
    out = args.out or Path(tempfile.mkdtemp(prefix="llm-distill-"))
    distilled = train([f"distill.teacher={export}", *args.overrides], out / "distilled")
    scratch = train(["distill.teacher=null", f"tokenizer.path={export}", *args.overrides], out / "scratch")
    ratio = distilled["wall_time_s"] / scratch["wall_time_s"]
    steps = round(scratch["steps"] * ratio)
    equal = train(["distill.teacher=null", f"tokenizer.path={export}", *args.overrides,
                   f"trainer.max_steps={steps}"], out / "scratch-equal-compute")
    teacher = json.loads((args.teacher_run / "metrics.json").read_text())
    print(f"\nStudent runs in {out}\n")
    print("| model | parameters | steps | tokens | test bpb | test ppl | bpb vs scratch | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m in (("teacher (default recipe)", teacher), ("student, from scratch", scratch),
                    ("student, distilled", distilled),
                    (f"student, from scratch, {ratio:.1f}x the steps (distillation's wall time)", equal)):
        print(f"| {name} | {m['parameters'] / 1e6:.2f}M | {m['steps']} | {m['tokens_trained']:,} | "
              f"{m['test']['bpb']:.4f} | {m['test']['ppl']:.2f} | {m['test']['bpb'] / scratch['test']['bpb']:.3f}x | "
              f"{m['wall_time_s']:.0f} |")


if __name__ == "__main__":
    main()
