"""What a plain `pip install lightning_llm` (no extras, empty cache) gives a new user: the defaults' dependencies,
no warning from our Hydra plugin, outputs under the user's umask, a precision probe of seconds, a continued
pretraining optimizer that suits a real base. `.ci/run`'s new-user stage runs the commands themselves in a fresh
venv without extras (scripts/new_user.sh)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]


def test_what_the_defaults_need_is_a_plain_dependency():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in deps}
    # gguf + accelerate: the built-in base and every .gguf file; peft: LoRA, what `auto` picks for a real base
    assert {"gguf", "accelerate", "peft"} <= names


def test_a_hydra_command_without_the_sweep_extra_prints_no_plugin_warning(tmp_path):
    # sys.modules[name] = None makes the package unimportable (find_spec -> None), as in a venv without the extra;
    # the checkout on PYTHONPATH lets Hydra's plugin scan list hydra_plugins/ as a wheel's install does (an editable
    # install's finder does not enumerate namespace packages, so the scan would never import our plugin)
    code = ("import sys; sys.modules['hydra_plugins.hydra_optuna_sweeper'] = None; "
            "sys.argv = ['llm-train', 'recipe=tiny', '--cfg', 'job']; "
            "from lightning_llm.cli.train import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "default", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "max_files: 8" in proc.stdout  # the composed config was printed
    assert "Error importing" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-2000:]

    sweep = subprocess.run([sys.executable, "-c", code.replace("'--cfg', 'job'", "'-m', 'hydra/sweeper=optuna'")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert sweep.returncode == 2
    assert sweep.stderr.strip().splitlines() == [
        "error: the Optuna sweeper is not installed: pip install 'lightning_llm[sweep]'"]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                             (0o002, 0o664, 0o775)])
def test_atomic_writes_give_files_the_users_umask(tmp_path, umask, file_mode, dir_mode):
    from lightning_llm.io import atomic_dir, atomic_file, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
        with atomic_file(tmp_path / "shard.bin") as f:
            f.write(b"x")
        with atomic_dir(tmp_path / "export") as out:
            (out / "config.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "shard.bin").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "export" / "config.json").stat().st_mode) == file_mode


def test_the_modelfile_beside_a_gguf_export_is_readable_by_others(tmp_path):
    from lightning_llm.export.modelfile import write_modelfile

    tokenizer = type("T", (), {"chat_template": None, "eos_token": "</s>"})()
    old = os.umask(0o022)
    try:
        path = write_modelfile(tmp_path / "m.Modelfile", tmp_path / "m.gguf", tokenizer, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_precision_probe_times_a_slice_of_a_big_batch(tmp_path, monkeypatch, caplog):
    from lightning_llm.training import precision
    from lightning_llm.training.module import CausalLMModule
    from tests.conftest import TINY_MODEL

    monkeypatch.setenv("LIGHTNING_LLM_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_cpu_has_native_bf16", lambda: True)
    model = CausalLMModule(300, config=TINY_MODEL).model
    shapes = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda input_ids, **kw: shapes.append(tuple(input_ids.shape))
                        or forward(input_ids=input_ids, **kw))
    probe = precision.StepProbe(model, 32, 128)  # a fine-tuning recipe's batch
    assert probe.shape == (4, 128)  # PROBE_TOKENS=512: four whole rows
    with caplog.at_level("INFO", logger="lightning_llm"):
        precision.resolve_precision("auto", "cpu", probe)
    assert shapes and set(shapes) == {(4, 128)}
    assert "on 4x128 tokens (a slice of the 32x128 batch)" in caplog.text
    assert precision.StepProbe(model, 2, 2048).shape == (1, 512)  # one row at least, of PROBE_MAX_LEN tokens at most
    big = torch.nn.Linear(1, 135_000_000, bias=False, device="meta")  # the built-in base's size, nothing allocated
    assert precision.StepProbe(big, 32, 128).shape == (4, 128)  # 4e11 FLOPs: 512 tokens
    huge = torch.nn.Linear(1, 1_000_000_000, bias=False, device="meta")  # 1B: fewer tokens, one row of 64 at least
    assert precision.StepProbe(huge, 32, 128).shape == (1, 70)


@pytest.mark.parametrize(("n_params", "overrides", "expected"), [
    (135e6, [], ("adamw", 5e-5)),  # a real base: AdamW at the continued-pretraining rate
    (4e6, [], ("muon", 3e-3)),  # a model pretrained here: the recipe's optimizer
    (135e6, ["optim=muon"], ("muon", 3e-3)),  # asked for on the command line: kept
    (135e6, ["+optim.muon.lr=0.01"], ("muon", 3e-3)),
])
def test_continued_pretraining_picks_the_optimizer_by_the_bases_size(n_params, overrides, expected):
    from lightning_llm.cli._continued import continued_optimizer
    from lightning_llm.training.optim import OptimConfig

    cfg = OmegaConf.create({"optim": {"name": "muon", "lr": 3e-3},
                            "continued": OmegaConf.load(ROOT / "conf" / "train.yaml")["continued"]})
    assert continued_optimizer(cfg, int(n_params), overrides) == (expected[0] == "adamw")
    assert (cfg.optim.name, cfg.optim.lr) == expected
    if expected[0] == "adamw":
        optim = OmegaConf.to_container(cfg.optim)
        assert OptimConfig(**{k: v for k, v in optim.items() if k != "muon"}).warmup_steps == 20


def test_tiny_takes_a_slice_of_the_corpus_and_prepares_it_apart(tmp_path, caplog):
    from lightning_llm.data.config import DataConfig
    from lightning_llm.data.pipeline import _data_key
    from lightning_llm.data.sources import _first
    from lightning_llm.errors import UserError

    assert OmegaConf.load(ROOT / "recipes" / "tiny.yaml").data.max_files == 8
    assert _data_key(DataConfig(max_files=8)) != _data_key(DataConfig())  # another prepared folder
    with caplog.at_level("WARNING", logger="lightning_llm"):
        assert _first(["b/z.txt", "a/y.txt", "c/x.txt"], 2, "data.data_files.train") == ["c/x.txt", "a/y.txt"]
    assert "data.max_files=2: training on the first 2 of the 3 files of data.data_files.train" in caplog.text
    with pytest.raises(UserError, match=r"data.max_files=0"):
        _first(["a.txt"], 0)


def test_torchaos_kernel_load_lines_stay_off_the_console():
    import logging

    from lightning_llm.cli._app import quiet_third_party_logs

    names = ["torchao", "torch.utils._pytree", "py.warnings", "lightning.pytorch", "lightning.fabric", "httpx",
             "urllib3", "datasets", "filelock", "fsspec"]
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in names}
    try:
        quiet_third_party_logs()
        # peft imports torchao where the quantize extra put it; its CPU build logs "Failed to load ..." at WARNING
        assert not logging.getLogger("torchao").isEnabledFor(logging.WARNING)
        assert not logging.getLogger("torch.utils._pytree").isEnabledFor(logging.WARNING)
        assert logging.getLogger("lightning_llm").isEnabledFor(logging.WARNING)  # ours still reach the console
    finally:  # global logging state: leave it as the other tests expect it
        logging.captureWarnings(False)
        for n, (level, handlers, propagate) in saved.items():
            lg = logging.getLogger(n)
            lg.setLevel(level)
            lg.handlers, lg.propagate = handlers, propagate
