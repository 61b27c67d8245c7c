"""Fine-tuning speed: packed SFT (SFTDataModule + SFTModule: per-example positions, response-only loss)
against pretraining (PackedDataset + CausalLMModule) on the same model shape, sequence length and batch, in
one process with the same Trainer settings.

    python -m benchmarks.sft_throughput            # the default recipe's shape (4L/256d), seq 256, batch 8
    python -m benchmarks.sft_throughput --quick    # fewer steps

Both use a 4,096-token BPE trained on the built-in plays; the SFT rows are the built-in `plays-qa` examples.
Tokens/s counts every position of every row (padding included, as pretraining has none); "fill" is the
share of positions that hold example tokens, so fill x ratio is the speed on real tokens.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from benchmarks.common import StepTimer, random_shard
from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.data.sources.corpora import corpus_files
from lightning_llm.data.tokenizer import token_byte_lengths, train_bpe
from lightning_llm.export import export_hf
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.tasks.sft_data import SFTDataModule
from lightning_llm.tasks.sft_module import SFTModule
from lightning_llm.training.module import CausalLMModule

SHAPE = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "tie_word_embeddings": True}


def _trainer(steps: int, warmup: int, timer: StepTimer) -> L.Trainer:
    return L.Trainer(max_steps=steps + warmup, accelerator="cpu", precision="32-true", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, callbacks=[timer], use_distributed_sampler=False)


def pretraining(tok, seq_len: int, batch: int, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    module = CausalLMModule(len(tok), "llama", {**SHAPE, "max_position_embeddings": seq_len}, eos_token_id=0)
    rows = (steps + warmup + 1) * batch
    data = PackedDataset([random_shard(len(tok), seq_len, rows)], token_byte_lengths(tok))
    loader = DataLoader(data, batch_sampler=GlobalBatchSampler(len(data), batch, seed=0))
    timer = StepTimer(warmup)
    _trainer(steps, warmup, timer).fit(module, loader)
    return batch * seq_len / timer.seconds_per_step


def sft(export: Path, seq_len: int, batch: int, steps: int, warmup: int) -> tuple[float, float]:
    dm = SFTDataModule({"source": "plays-qa", "format": "squad", "seq_len": seq_len, "batch_size": batch,
                        "max_examples": {"train": (steps + warmup + 2) * batch * 4, "validation": 10, "test": 10}},
                       export, seed=0)
    dm.setup()
    occupied = _occupied(dm.datasets["train"].rows)
    torch.manual_seed(0)
    module = SFTModule(str(export))
    timer = StepTimer(warmup)
    _trainer(steps, warmup, timer).fit(module, datamodule=dm)
    return batch * seq_len / timer.seconds_per_step, occupied


def _occupied(rows: dict) -> float:
    """Share of row positions that belong to an example (not the padding at a row's end)."""
    import numpy as np

    total = rows["input_ids"].size
    padding = 0
    for r in range(len(rows["input_ids"])):
        pos = rows["position_ids"][r]
        starts = np.flatnonzero(pos == 0)
        last = starts[-1]
        if (rows["labels"][r, last:] == -100).all():  # the last "example" is padding
            padding += len(pos) - last
    return 1 - padding / total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    steps, warmup = (10, 3) if args.quick else (30, 5)
    plays = [p.read_text(encoding="utf-8", errors="replace") for p in corpus_files("shakespeare")]
    tok = train_bpe(plays, vocab_size=4096)  # the default recipe's tokenizer size, on its corpus
    export = Path(tempfile.mkdtemp(prefix="llm-bench-")) / "export"
    cfg = model_config("llama", {**SHAPE, "max_position_embeddings": args.seq_len}, len(tok), tok.eos_token_id)
    export_hf(build_causal_lm(cfg, InitConfig()), tok, export, max_length=args.seq_len)

    pre = pretraining(tok, args.seq_len, args.batch, steps, warmup)
    packed, fill = sft(export, args.seq_len, args.batch, steps, warmup)
    print(f"\nshape 4L/256d llama, vocab {len(tok)}, seq {args.seq_len}, batch {args.batch}, fp32, "
          f"{torch.get_num_threads()} threads, "
          f"{steps} timed steps")
    print(f"{'path':<34}{'tokens/s':>10}{'ratio':>8}{'fill':>7}")
    print(f"{'pretraining (packed documents)':<34}{pre:>10.0f}{1.0:>8.2f}{1.0:>7.2f}")
    print(f"{'SFT, packed examples':<34}{packed:>10.0f}{packed / pre:>8.2f}{fill:>7.2f}")


if __name__ == "__main__":
    main()
