"""Command-line entry points: llm-train and llm-prepare (Hydra apps), llm-generate (argparse)."""
