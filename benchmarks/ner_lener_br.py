"""NER on real gold data: LeNER-Br (Portuguese legal text, CoNLL, six entity types), fine-tuned from a
pretrained export with `llm-train recipe=ner`, causal (default) and bidirectional side by side, each beside
its baselines (the untrained head, the majority tag).

    python -m benchmarks.ner_lener_br --init-from RUN/export [--data ../shared/data/lener-br] [--steps 300]

Needs the LeNER-Br CoNLL files (train.conll, dev.conll, test.conll); prints test entity F1 overall and per
type. The backbone is whatever `--init-from` holds (the default recipe's model saw only English plays).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(init_from: Path, data: Path, steps: int, seq_len: int, bidirectional: bool, out: Path) -> dict:
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", "recipe=ner", f"init_from={init_from}",
           "data.format=conll", "data.source=null", f"data.data_files.train={data}/train.conll",
           f"data.data_files.validation={data}/dev.conll", f"data.data_files.test={data}/test.conll",
           "data.max_examples=null", f"data.seq_len={seq_len}", f"trainer.max_steps={steps}",
           f"trainer.val_check_interval={steps}",
           f"checkpoint.every_n_train_steps={steps}", f"finetune.bidirectional={str(bidirectional).lower()}",
           "logger=csv", f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--init-from", type=Path, required=True)
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "lener-br")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seq-len", type=int, default=256, help="longer sentences are cut (a counted warning)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lener-br-"))
    results = {name: run(args.init_from, args.data, args.steps, args.seq_len, name == "bidirectional", tmp / name)
               for name in ("causal", "bidirectional")}
    types = sorted(k.removeprefix("f1_") for k in results["causal"]["test"] if k.startswith("f1_"))
    print(f"\nLeNER-Br test, {args.steps} steps of batch 32 from {args.init_from} (runs in {tmp})")
    print(f"{'model':<34}{'F1':>7}{'P':>7}{'R':>7}" + "".join(f"{t[:8]:>10}" for t in types) + f"{'time s':>8}")
    first = next(iter(results.values()))
    for name, vals in first["baselines"].items():
        print(f"{name:<34}{vals['f1']:>7.1f}{vals['precision']:>7.1f}{vals['recall']:>7.1f}")
    for name, m in results.items():
        t = m["test"]
        print(f"{'fine-tuned, ' + name:<34}{t['f1']:>7.1f}{t['precision']:>7.1f}{t['recall']:>7.1f}"
              + "".join(f"{t[f'f1_{k}']:>10.1f}" for k in types) + f"{m['wall_time_s']:>8.0f}")


if __name__ == "__main__":
    main()
