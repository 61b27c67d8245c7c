"""Where the library keeps downloaded corpora and prepared data when the user does not say."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$LIGHTNING_LLM_CACHE`, else `$XDG_CACHE_HOME/lightning_llm`, else `~/.cache/lightning_llm`."""
    if env := os.environ.get("LIGHTNING_LLM_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lightning_llm"
