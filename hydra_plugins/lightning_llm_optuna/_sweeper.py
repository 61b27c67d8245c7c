"""`hydra/sweeper=optuna` for the llm-* commands: Hydra finds sweepers only under the `hydra_plugins` package, so
the plugin class and its config live here and the work in `lightning_llm.training.sweep`.

Hyperparameter search with Optuna (pip install 'lightning_llm[sweep]'): `llm-train -m hydra/sweeper=optuna
'optim.lr=tag(log, interval(1e-4, 1e-2))' ...`, or a ready search: `llm-train -m hparams_search=lr_warmup_batch`.
Each trial is one llm-train run in <sweep dir>/<trial number>/ and returns the `optimized_metric` of its
metrics.json. The study lives in <sweep dir>/optuna.db: the same command with the same hydra.sweep.dir resumes a
killed sweep (the trial it cut short continues from its own checkpoint). At the end: the trials' table and
<sweep dir>/sweep.json with the best trial.
"""

# Only imported (by optuna_sweeper.py) where the `sweep` extra is installed: Hydra's plugin scan skips modules whose
# name starts with "_", so without the extra nothing here is imported and Hydra has nothing to warn about.
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.lightning_llm_optuna._sweeper.ResumableOptunaSweeper"
    # auto: minimize a loss (bpb, ppl, loss), maximize a task score (exact_match, f1, bleu, chrf, rouge, acc)
    direction: Any = "auto"
    storage: Any = "sqlite:///${hydra.sweep.dir}/optuna.db"  # beside the trials: a killed sweep resumes from it
    study_name: str | None = "${hydra.job.name}"
    n_trials: int = 20  # in all, counting the trials of the sweeps this one resumes
    n_jobs: int = 1  # trials asked of the sampler at a time (Hydra's basic launcher runs them one after another)
    max_failure_rate: float = 1.0  # a failed trial (e.g. a loss that went non-finite) is recorded; the search goes on


def register_config() -> None:
    """Make `hydra/sweeper=optuna` ours: call it after Hydra's plugin scan, which stores the plain plugin's config
    under that name, and which cannot list this module in an editable install (setuptools' editable finder does not
    enumerate its namespace packages), so the class is named to Hydra here too."""
    from hydra.core.plugins import Plugins

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=ResumableOptunaSweeperConf,
                                 provider="lightning_llm")
    cls = ResumableOptunaSweeper
    Plugins.instance().class_name_to_class.setdefault(f"{cls.__module__}.{cls.__name__}", cls)


class ResumableOptunaSweeper(Sweeper):
    """Hydra's Optuna sweeper, resumable from its study storage, with a summary of the trials at the end."""

    def __init__(self, sampler: Any, direction: Any, storage: Any, study_name: str | None, n_trials: int,
                 n_jobs: int, max_failure_rate: float, search_space: DictConfig | None,
                 custom_search_space: str | None, params: DictConfig | None) -> None:
        from lightning_llm.training.sweep import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(sampler, direction, storage, study_name, n_trials, n_jobs,
                                                  max_failure_rate, search_space, custom_search_space, params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
