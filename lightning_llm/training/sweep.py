"""Hyperparameter search over llm-train runs: Hydra's Optuna sweeper, made resumable, with a table of the trials
and the best one in <sweep dir>/sweep.json.

Hydra's own Optuna sweeper (hydra-optuna-sweeper) parses the search space, builds the sampler and asks Optuna for
trials; what it lacks for training runs is done here: the study continues where a killed sweep stopped (its
trials keep their numbers and folders, one cut short resumes from its own checkpoint), a trial that fails is one
line and the search goes on, and the end names the best trial, its value and its run dir.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig
from optuna.trial import TrialState

from lightning_llm.errors import UserError
from lightning_llm.io import write_json

log = logging.getLogger("lightning_llm")
logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's storage set-up lines: noise on the console
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep logs each trial's value itself

RESULTS = "sweep.json"
# metric names where lower is better; every other score (exact_match, f1, bleu, chrf, rouge*, acc) is maximized
_LOWER_IS_BETTER = ("loss", "bpb", "ppl", "nll", "perplexity")


def direction_for(metric: str, direction: Any = "auto") -> str:
    """`auto`: minimize a loss (bpb, ppl, loss), maximize a task score; else the direction given."""
    direction = getattr(direction, "name", direction)
    if str(direction) != "auto":
        if str(direction) not in ("minimize", "maximize"):
            raise UserError(f"hydra.sweeper.direction={direction}: choose auto, minimize or maximize")
        return str(direction)
    name = metric.rsplit("/", 1)[-1]
    return "minimize" if any(word in name for word in _LOWER_IS_BETTER) else "maximize"


def objective(metrics: dict | None, metric: str) -> float | None:
    """What a trial reports to the sweeper: `val/bpb` is metrics.json's ["val"]["bpb"] (None on ranks > 0)."""
    if metrics is None:
        return None
    split, _, name = metric.partition("/")
    value = (metrics.get(split) or {}).get(name) if isinstance(metrics.get(split), dict) else None
    if not isinstance(value, int | float):
        known = [f"{s}/{k}" for s in ("val", "test") for k, v in (metrics.get(s) or {}).items()
                 if isinstance(v, int | float)]
        raise UserError(f"optimized_metric={metric!r} is not in this run's metrics.json: choose one of {known}")
    return float(value)


class TrialFailed(RuntimeError):
    """A trial that stopped with a user-facing error (e.g. a loss that went non-finite): the sweep goes on."""


def run_trial(fn: Callable[[DictConfig], dict | None], cfg: DictConfig) -> float | None:
    """One trial: the llm-train run `fn(cfg)`, returning its `optimized_metric`."""
    try:
        return objective(fn(cfg), str(cfg.get("optimized_metric") or "val/bpb"))
    except UserError as e:
        raise TrialFailed(str(e)) from None
    finally:
        _finish_wandb()


def _finish_wandb() -> None:
    """The next trial runs in this process: its W&B run must be a new one."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except UserError as e:  # the sweep's own errors, one line as every entry point's (Hydra would print a trace)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        space, fixed = self._space(arguments)
        metric = str(self.config.get("optimized_metric") or "val/bpb")
        direction = direction_for(metric, self.direction)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    direction=direction, load_if_exists=True)
        if study.trials:  # resumed: a sampler seeded as the first time would ask for the same params again
            study.sampler = self._reseeded(len(study.trials))
        if study.direction.name.lower() != direction:
            made = study.direction.name.lower()
            raise UserError(f"the study {self.study_name!r} in {self.storage} was made to {made}"
                            f" (optimized_metric={metric}); give a new hydra.sweep.dir for a search that {direction}s")
        done = [t for t in study.trials if t.state != TrialState.RUNNING]
        log.info("Optuna study %r in %s: %d trials done, %d to go (%s %s)", study.study_name, self.storage,
                 len(done), max(self.n_trials - len(done), 0), direction, metric)

        for cut_short in [t for t in study.trials if t.state == TrialState.RUNNING]:  # the sweep was killed there
            overrides = (*_overrides(cut_short.params, cut_short.user_attrs), "resume=auto")
            self._launch(study, [cut_short.number], [overrides], cut_short.number)
        while (left := self.n_trials - len(study.get_trials(deepcopy=False))) > 0:
            trials = [study.ask() for _ in range(min(left, self.n_jobs))]
            overrides = self._configure_trials(trials, space, fixed)
            self._launch(study, [t.number for t in trials], overrides, trials[0].number)
        self._finish(study, metric, direction, sweep_dir)

    def _reseeded(self, offset: int) -> optuna.samplers.BaseSampler:
        sampler_cfg = self.config.hydra.sweeper.sampler
        if sampler_cfg.get("seed") is None:
            self.sampler.reseed_rng()
            return self.sampler
        return instantiate(sampler_cfg, seed=int(sampler_cfg.seed) + offset)

    def _space(self, arguments: list[str]) -> tuple[dict, dict]:
        """The search space (sweeper params and command-line sweeps) and the fixed overrides of every trial."""
        self._process_searchspace_config()
        space, fixed = create_params_from_overrides(self._parse_sweeper_params_config() + list(arguments))
        space = {**(self.search_space_distributions or {}), **space}
        for name in fixed:
            space.pop(name, None)
        if not space and not self.custom_search_space_extender:
            raise UserError("nothing to search: give hydra.sweeper.params or sweeps on the command line, e.g. "
                            "'optim.lr=tag(log, interval(1e-4, 1e-2))' (or hparams_search=lr_warmup_batch)")
        return space, fixed

    def _launch(self, study: optuna.Study, numbers: list[int], overrides: Sequence[Sequence[str]],
                first: int) -> None:
        """Run trials as jobs numbered by their trial numbers (their folders: <sweep dir>/<number>)."""
        if numbers != list(range(first, first + len(numbers))):  # Optuna numbers a batch consecutively
            raise RuntimeError(f"trials {numbers} are not consecutive")
        returns = self.launcher.launch(overrides, initial_job_idx=first)
        for number, ret in zip(numbers, returns, strict=True):
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
            study._storage.set_trial_user_attr(trial_id, "run_dir", _run_dir(ret))
            value, error = _value(ret)
            if error is None:
                study.tell(number, value)
                log.info("trial %d: %s = %.6g  (%s)", number, _metric_name(self.config), value, " ".join(ret.overrides))
            else:
                study._storage.set_trial_user_attr(trial_id, "error", error)
                study.tell(number, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", number, error)
        self._check_failures(study)

    def _check_failures(self, study: optuna.Study) -> None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
        failed = [t for t in finished if t.state == TrialState.FAIL]
        if finished and len(failed) / len(finished) > self.max_failure_rate:
            raise UserError(f"{len(failed)} of {len(finished)} trials failed (more than hydra.sweeper.max_failure_rate"
                            f"={self.max_failure_rate}); the last: {failed[-1].user_attrs.get('error')}")

    def _finish(self, study: optuna.Study, metric: str, direction: str, sweep_dir: Path) -> None:
        trials = [_row(t) for t in study.get_trials(deepcopy=False)]
        complete = [t for t in trials if t["state"] == "COMPLETE"]
        if not complete:
            first = next((t["error"] for t in trials if t.get("error")), "none ran")
            raise UserError(f"no trial of the sweep in {sweep_dir} completed; the first failure: {first}")
        best = _row(study.best_trial)
        write_json(sweep_dir / RESULTS, {"optimized_metric": metric, "direction": direction,
                                         "study_name": study.study_name, "storage": str(self.storage),
                                         "best_trial": best, "trials": trials})
        print(summary_table(trials, metric))
        print(f"Best trial {best['number']}: {metric} {best['value']:.6g} with "
              + " ".join(f"{k}={v}" for k, v in best["params"].items()) + f"  (run dir {best['run_dir']})")
        print(f"Sweep results in {sweep_dir / RESULTS}")


def summary_table(trials: list[dict], metric: str) -> str:
    """The trials as a Markdown table: number, state, the optimized metric (and its test figure, from the run's
    metrics.json), each searched parameter, run dir."""
    names = sorted({k for t in trials for k in t["params"]})
    split, _, name = metric.partition("/")
    test = f"test/{name}" if split == "val" else None
    lines = [f"| trial | state | {metric} | " + (f"{test} | " if test else "") + " | ".join(names) + " | run dir |",
             "|---" * (len(names) + 4 + bool(test)) + "|"]
    for t in trials:
        value = "" if t["value"] is None else f"{t['value']:.6g}"
        if test:
            figure = ((t.get("metrics") or {}).get("test") or {}).get(name)
            value += " | " + ("" if figure is None else f"{figure:.6g}")
        params = " | ".join(_fmt(t["params"].get(n, "")) for n in names)
        lines.append(f"| {t['number']} | {t['state'].lower()} | {value} | {params} | {t['run_dir'] or ''} |")
    return "\n".join(lines)


def _overrides(params: dict, user_attrs: dict) -> tuple[str, ...]:
    """A trial's overrides: its sampled params and the fixed ones (which the base sweeper keeps as user attrs)."""
    fixed = {k: v for k, v in user_attrs.items() if k not in ("run_dir", "error")}
    return tuple(f"{k}={v}" for k, v in {**params, **fixed}.items())


def _value(ret: JobReturn) -> tuple[float | None, str | None]:
    if ret.status != JobStatus.COMPLETED:
        return None, str(ret._return_value).strip().splitlines()[-1] if str(ret._return_value).strip() else repr(
            ret._return_value)
    value = ret._return_value
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None, f"the trial returned {value!r}, not a finite number"
    return float(value), None


def _run_dir(ret: JobReturn) -> str | None:
    cfg = ret.hydra_cfg
    return None if cfg is None else str(cfg.hydra.runtime.output_dir)


def _row(t: optuna.trial.FrozenTrial) -> dict:
    run_dir = t.user_attrs.get("run_dir")
    return {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
            "run_dir": run_dir, "error": t.user_attrs.get("error"), "metrics": _run_metrics(run_dir),
            "duration_s": None if t.duration is None else round(t.duration.total_seconds(), 1)}


def _run_metrics(run_dir: str | None) -> dict | None:
    """The trial's final validation and test figures and steps, from its metrics.json (None if it has none)."""
    path = Path(run_dir or "") / "metrics.json"
    if not run_dir or not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return {k: metrics[k] for k in ("val", "test", "steps", "wall_time_s") if k in metrics}


def _metric_name(config) -> str:
    return str(config.get("optimized_metric") or "val/bpb")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
