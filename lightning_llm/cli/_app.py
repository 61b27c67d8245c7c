"""What every Hydra entry point shares: where the configs and recipes live, the `llm_cache` resolver,
one-line errors."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import lightning_llm
from lightning_llm.errors import UserError
from lightning_llm.paths import cache_dir

_PKG = Path(lightning_llm.__file__).parent
# Installed wheels carry conf/ and recipes/ inside the package; a source checkout keeps them at the top level.
_ROOT = _PKG if (_PKG / "conf").is_dir() else _PKG.parent
CONF_DIR = str(_ROOT / "conf")
RECIPES_DIR = _ROOT / "recipes"

if not OmegaConf.has_resolver("llm_cache"):
    OmegaConf.register_new_resolver("llm_cache", lambda: str(cache_dir()))


def register_recipes(folder: Path = RECIPES_DIR) -> None:
    """Each recipes/NAME.yaml becomes the option NAME of the `recipe` group (`llm-train recipe=NAME`).

    Recipes live at the top of the project, not inside conf/: whole experiments next to the parts they
    combine. Users add their own as recipe/NAME.yaml under a folder in `hydra.searchpath`.
    """
    store = ConfigStore.instance()
    for path in sorted(folder.glob("*.yaml")):
        store.store(group="recipe", name=path.stem, node=OmegaConf.load(path), package="_global_")


register_recipes()


def check_recipe_arg(argv: list[str]) -> None:
    """Hydra's error for an unknown group option is a page long; name the recipe and the choices instead."""
    if any(arg.startswith(("hydra.searchpath", "+hydra.searchpath")) for arg in argv):
        return  # the user's own recipe folders: Hydra knows them
    for arg in argv:
        if arg.startswith("recipe="):
            name = arg.split("=", 1)[1]
            if not (RECIPES_DIR / f"{name}.yaml").exists():
                known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
                _fail(f"unknown recipe {name!r} (no recipes/{name}.yaml); choose one of {known}")


def hydra_main(config_name: str, fn: Callable[[DictConfig], object], argv_hook=check_recipe_arg
               ) -> Callable[[], None]:
    """The console entry point of a Hydra command: `argv_hook` sees (and may rewrite) the arguments first,
    then `fn(cfg)` runs on the composed config `conf/<config_name>.yaml`, a `UserError` as one line."""

    @hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")
    def _run(cfg: DictConfig) -> float | None:
        quiet_third_party_logs()
        if in_optuna_sweep():  # a trial: its value goes to the sweeper, its failure fails the trial, not the sweep
            from lightning_llm.training.sweep import run_trial

            return run_trial(fn, cfg)
        run_safely(fn, cfg)
        return None

    def main() -> None:
        if argv_hook is not None:
            sys.argv[1:] = argv_hook(sys.argv[1:]) or sys.argv[1:]
        use_our_optuna_sweeper(sys.argv[1:])
        _run()

    main.config_name, main.argv_hook = config_name, argv_hook  # what the docs test composes a command with
    return main


def use_our_optuna_sweeper(argv: list[str]) -> None:
    """`hydra/sweeper=optuna` (and `hparams_search=...`) gets our resumable sweeper; without the `sweep` extra,
    one line saying what to install."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        if any(a.startswith(("hydra/sweeper=optuna", "hparams_search=")) for a in argv):
            _fail("the Optuna sweeper is not installed: pip install 'lightning_llm[sweep]'")
        return
    from hydra.core.plugins import Plugins

    Plugins.instance()  # Hydra's plugin scan first: it stores the plain plugin's config, which ours replaces
    from hydra_plugins.lightning_llm_optuna._sweeper import register_config

    register_config()


def in_optuna_sweep() -> bool:
    """True inside a trial of `hydra/sweeper=optuna` (lightning_llm.training.sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    return str(HydraConfig.get().sweeper.get("_target_", "")).endswith("ResumableOptunaSweeper")


def run_safely(fn: Callable[[DictConfig], object], cfg: DictConfig) -> object:
    """Run an entry point; a `UserError` or a full disk becomes one line on stderr and exit status 2."""
    try:
        return fn(cfg)
    except UserError as e:
        _finish_wandb()  # W&B's teardown lines come first: the error is the last thing the user reads
        _fail(str(e))
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        _finish_wandb()
        _fail(disk_full_message(e, OmegaConf.select(cfg, "paths.output_dir")))


def disk_full_message(e: OSError, run_dir: str | None) -> str:
    """What filled up, how much is free there, and what the run kept (its newest checkpoint that loads)."""
    from lightning_llm.training.checkpointing import latest_checkpoint

    target = Path(e.filename) if e.filename else Path(run_dir or ".")
    folder = next((p for p in (target, *target.parents) if p.is_dir()), Path("."))
    free = shutil.disk_usage(folder).free
    kept = latest_checkpoint(Path(run_dir) / "checkpoints") if run_dir else None
    what = (f"kept: {kept} (the newest checkpoint, whole); continue with resume=auto in the same run dir"
            if kept else "no checkpoint was kept")
    return (f"no space left on device writing {target.name} in {folder} ({free:,} bytes free there); {what} "
            "once space is freed (or lower checkpoint.keep, or point hydra.run.dir / paths.data_dir elsewhere)")


def _finish_wandb() -> None:
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish(exit_code=2)


def quiet_third_party_logs() -> None:
    """The console shows what the user can act on; the rest goes to the run's log file (`<run dir>/train.log`).

    Python warnings of the libraries (deprecations, notes on features we do not use) and Lightning's
    informational lines (hardware found, seeds, tips) are written to the log file only; Lightning's own
    warnings and errors, and ours, still reach the console.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    for name in ("httpx", "urllib3", "datasets", "filelock", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # peft imports torchao where the `quantize` extra put it: its CPU build warns that its CUDA kernels do not
    # load, and torch's pytree about torchao's enums; neither concerns a run
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    warnings_log.handlers, warnings_log.propagate = list(files), False
    for name in ("lightning.pytorch", "lightning.fabric"):
        lightning_log = logging.getLogger(name)
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        lightning_log.handlers, lightning_log.propagate = [*files, console], False
        lightning_log.setLevel(logging.INFO)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
