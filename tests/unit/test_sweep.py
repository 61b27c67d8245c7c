"""The pieces of the hyperparameter search: which way a metric goes, a trial's value, the summary table."""

import pytest

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

from omegaconf import OmegaConf

from lightning_llm.errors import UserError
from lightning_llm.training.sweep import TrialFailed, direction_for, objective, run_trial, summary_table


@pytest.mark.parametrize(("metric", "way"), [
    ("val/bpb", "minimize"), ("val/loss", "minimize"), ("test/ppl", "minimize"), ("val/f1", "maximize"),
    ("val/exact_match", "maximize"), ("val/rougeL", "maximize"), ("val/chrf", "maximize")])
def test_auto_minimizes_losses_and_maximizes_task_scores(metric, way):
    assert direction_for(metric, "auto") == way
    assert direction_for(metric, "maximize") == "maximize"  # given, it wins


def test_a_direction_outside_the_three_is_refused():
    with pytest.raises(UserError, match="choose auto, minimize or maximize"):
        direction_for("val/bpb", "down")


def test_a_trial_returns_its_metric_and_names_the_choices_when_it_is_missing():
    metrics = {"val": {"bpb": 2.5, "loss": 1.7}, "test": {"bpb": 2.6}, "steps": 10}
    assert objective(metrics, "val/bpb") == 2.5 and objective(metrics, "test/bpb") == 2.6
    assert objective(None, "val/bpb") is None  # ranks other than 0
    with pytest.raises(UserError, match=r"optimized_metric='val/f1'.*\['val/bpb', 'val/loss', 'test/bpb'\]"):
        objective(metrics, "val/f1")


def test_a_user_error_fails_the_trial_not_the_sweep():
    def diverged(cfg):
        raise UserError("training loss is nan at step 3: stopped")

    with pytest.raises(TrialFailed, match="loss is nan at step 3"):
        run_trial(diverged, OmegaConf.create({"optimized_metric": "val/bpb"}))
    assert run_trial(lambda cfg: {"val": {"f1": 40.0}}, OmegaConf.create({"optimized_metric": "val/f1"})) == 40.0


def test_the_summary_table_has_a_row_per_trial_and_a_column_per_parameter():
    trials = [{"number": 0, "state": "COMPLETE", "value": 2.5, "params": {"optim.lr": 0.003}, "run_dir": "s/0",
               "metrics": {"val": {"bpb": 2.5}, "test": {"bpb": 2.4}}},
              {"number": 1, "state": "FAIL", "value": None, "params": {"optim.lr": 0.05}, "run_dir": "s/1"}]
    table = summary_table(trials, "val/bpb").splitlines()
    assert table[0] == "| trial | state | val/bpb | test/bpb | optim.lr | run dir |" and table[1].count("|---") == 6
    assert table[2] == "| 0 | complete | 2.5 | 2.4 | 0.003 | s/0 |" and table[3] == "| 1 | fail |  |  | 0.05 | s/1 |"


def test_a_sweeps_wandb_runs_share_a_group_named_after_its_study(monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lightning_llm.cli import _run
    from lightning_llm.cli._app import CONF_DIR, use_our_optuna_sweeper

    use_our_optuna_sweeper([])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["hydra/sweeper=optuna", "hydra.sweeper.study_name=lr-search", "logger=wandb"],
                      return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)  # set as a launched job has it
    cfg.hydra.job.num, cfg.hydra.runtime.output_dir = 0, str(tmp_path)
    seen = {}
    monkeypatch.setattr(_run, "instantiate", lambda node, **kw: seen.update(kw) or _NoLogger())
    for mode, group in ((RunMode.RUN, None), (RunMode.MULTIRUN, "lr-search")):
        OmegaConf.set_readonly(cfg.hydra, False)
        cfg.hydra.mode = mode
        HydraConfig.instance().set_config(cfg)
        seen.clear()
        _run.build_logger(cfg, None)
        assert seen.get("group") == group and _run._sweep_name() == group


class _NoLogger:
    def log_hyperparams(self, params):
        pass
