"""lightning_llm: pretrain and evaluate your own language model with Lightning, Hydra and W&B."""

__version__ = "0.1.0"
