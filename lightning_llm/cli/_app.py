"""What every Hydra entry point shares: where the configs live, the `llm_cache` resolver, one-line errors."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import lightning_llm
from lightning_llm.errors import UserError
from lightning_llm.paths import cache_dir

_PKG = Path(lightning_llm.__file__).parent
# Installed wheels carry the configs inside the package; a source checkout keeps them at the top level.
CONF_DIR = str(_PKG / "conf" if (_PKG / "conf").is_dir() else _PKG.parent / "conf")

if not OmegaConf.has_resolver("llm_cache"):
    OmegaConf.register_new_resolver("llm_cache", lambda: str(cache_dir()))


def check_recipe_arg(argv: list[str]) -> None:
    """Hydra's error for an unknown group option is a page long; name the recipe and the choices instead."""
    recipes = Path(CONF_DIR) / "recipe"
    for arg in argv:
        if arg.startswith("recipe="):
            name = arg.split("=", 1)[1]
            if not (recipes / f"{name}.yaml").exists():
                known = sorted(p.stem for p in recipes.glob("*.yaml"))
                _fail(f"unknown recipe {name!r} (no recipes/{name}.yaml); choose one of {known}")


def run_safely(fn: Callable[[DictConfig], object], cfg: DictConfig) -> object:
    """Run an entry point; a `UserError` becomes one line on stderr and exit status 2."""
    try:
        return fn(cfg)
    except UserError as e:
        _fail(str(e))


def quiet_third_party_logs() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    for name in ("httpx", "urllib3", "datasets", "filelock", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
