"""Hydra config groups; a package only so that they ship inside the wheel as `lightning_llm/conf`."""
