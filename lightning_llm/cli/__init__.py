"""Command-line entry points (Hydra apps): llm-train, llm-prepare, llm-generate."""
