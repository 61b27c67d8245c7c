"""A full disk at each writer (injected ENOSPC): the final name keeps what it had, no temp file is left, and the
error names the file, so the run can end in one line (tests/integration/test_faults.py does it on a real tmpfs)."""

from __future__ import annotations

import builtins
import errno
import os

import numpy as np
import pytest
import torch

from lightning_llm.cli._app import disk_full_message
from lightning_llm.data.packing import write_shard
from lightning_llm.io import atomic_dir, write_json
from lightning_llm.training.checkpoint_io import AtomicCheckpointIO


class FullDisk:
    """Wrap os.fdopen's files so that writing fails half-way with ENOSPC, as a full disk does."""

    def __init__(self, monkeypatch):
        real = os.fdopen

        def fdopen(fd, *args, **kwargs):
            f = real(fd, *args, **kwargs)
            write = f.write

            def half(data):
                write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            f.write = half
            return f
        monkeypatch.setattr(os, "fdopen", fdopen)


def _no_temp_left(folder):
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_checkpoint_write_on_a_full_disk_keeps_the_previous_file_whole(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, path)
    FullDisk(monkeypatch)
    with pytest.raises(OSError) as e:
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(1000)}, path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert torch.load(path, weights_only=True)["global_step"] == 1
    _no_temp_left(tmp_path)


def test_metrics_shards_and_exports_on_a_full_disk_leave_nothing_under_the_final_name(tmp_path, monkeypatch):
    FullDisk(monkeypatch)
    with pytest.raises(OSError) as e:
        write_json(tmp_path / "metrics.json", {"a": "x" * 1000})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "metrics.json")
    with pytest.raises(OSError) as e:
        write_shard(tmp_path / "train-00000.npy", np.zeros((64, 9), dtype=np.uint16))
    assert e.value.errno == errno.ENOSPC and e.value.filename.endswith("train-00000.npy")
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "train-00000.npy").exists()
    _no_temp_left(tmp_path)
    monkeypatch.undo()
    real_open = builtins.open

    def full_open(file, mode="r", *args, **kwargs):  # save_pretrained's writers: a full disk at the first file
        if "w" in mode and ".export." in str(file):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(OSError) as e, atomic_dir(tmp_path / "export") as tmp:
        open(tmp / "config.json", "w").write("{}")  # noqa: SIM115
    assert e.value.errno == errno.ENOSPC and not (tmp_path / "export").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.")]


def test_the_message_names_the_folder_the_free_bytes_and_the_kept_checkpoint(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"global_step": 30}, ckpts / "step-0000030.ckpt")
    e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(ckpts / "step-0000040.ckpt"))
    line = disk_full_message(e, str(tmp_path))
    assert line.startswith(f"no space left on device writing step-0000040.ckpt in {ckpts} (")
    assert "bytes free there" in line and f"kept: {ckpts / 'step-0000030.ckpt'}" in line and "resume=auto" in line
