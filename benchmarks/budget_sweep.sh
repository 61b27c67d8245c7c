#!/usr/bin/env bash
# The sweep behind the default recipe's settings (docs/training.md, "Learning per compute"): llm-train -m runs on the
# built-in corpus for a 2-minute and a 5-minute budget of training, one job after another (never two at once:
# they share the CPU), then their tables. About 50 minutes on 2 CPU cores (docs/training.md lists the points it ran).
#
#   bash benchmarks/budget_sweep.sh [OUT]      # OUT: the sweep dirs (default: sweeps/budget)
set -euo pipefail
out=${1:-sweeps/budget}
common=(logger=csv trainer.max_steps=1000000 trainer.limit_val_batches=10 optim.warmup_steps=30
        data.seq_len=128 data.batch_size=16 model.config.num_attention_heads=4 model.config.num_key_value_heads=4)
w128=(model.config.hidden_size=128 model.config.intermediate_size=384)
w192=(model.config.hidden_size=192 model.config.intermediate_size=576)
two=trainer.max_time=00:00:01:56
five=trainer.max_time=00:00:04:56

# 2 minutes, AdamW: width and depth, vocabulary, batch, learning rate
llm-train -m "${common[@]}" $two optim=adamw "${w128[@]}" model.config.num_hidden_layers=2,4 \
    tokenizer.vocab_size=1024,2048,4096 hydra.sweep.dir="$out/2min-adamw-128"
llm-train -m "${common[@]}" $two optim=adamw "${w192[@]}" model.config.num_hidden_layers=4 \
    tokenizer.vocab_size=4096 hydra.sweep.dir="$out/2min-adamw-192"
llm-train -m "${common[@]}" $two optim=adamw "${w128[@]}" model.config.num_hidden_layers=4 tokenizer.vocab_size=4096 \
    data.batch_size=8 optim.lr=3e-3 hydra.sweep.dir="$out/2min-adamw-batch8"
llm-train -m "${common[@]}" $two optim=adamw "${w128[@]}" model.config.num_hidden_layers=4 tokenizer.vocab_size=4096 \
    optim.lr=6e-3 hydra.sweep.dir="$out/2min-adamw-lr"
# 2 minutes, Muon: depth, width, its learning rate, vocabulary
llm-train -m "${common[@]}" $two optim=muon "${w128[@]}" model.config.num_hidden_layers=2,4 \
    tokenizer.vocab_size=2048 hydra.sweep.dir="$out/2min-muon-128"
llm-train -m "${common[@]}" $two optim=muon "${w128[@]}" model.config.num_hidden_layers=2 \
    tokenizer.vocab_size=1024 optim.muon.lr=0.02 hydra.sweep.dir="$out/2min-muon-1024"
llm-train -m "${common[@]}" $two optim=muon "${w128[@]}" model.config.num_hidden_layers=2 \
    tokenizer.vocab_size=2048 optim.muon.lr=0.04 hydra.sweep.dir="$out/2min-muon-lr"
llm-train -m "${common[@]}" $two optim=muon "${w192[@]}" model.config.num_hidden_layers=2 \
    tokenizer.vocab_size=2048 hydra.sweep.dir="$out/2min-muon-192"
# 5 minutes: the 2-minute winner, twice as deep, and that with AdamW
llm-train -m "${common[@]}" $five optim=muon "${w128[@]}" model.config.num_hidden_layers=2,4 \
    tokenizer.vocab_size=2048 hydra.sweep.dir="$out/5min-muon-128"
llm-train -m "${common[@]}" $five optim=adamw "${w128[@]}" model.config.num_hidden_layers=4 \
    tokenizer.vocab_size=2048 hydra.sweep.dir="$out/5min-adamw-128"

for budget in 2min 5min; do
    echo "$budget:"
    python -m benchmarks.sweep_table "$out"/$budget-* --drop hydra. logger= paths. trainer. optim.warmup_steps \
        data.seq_len data.batch_size=16 model.config.num_attention_heads model.config.num_key_value_heads \
        model.config.intermediate_size
done
