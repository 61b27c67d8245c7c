"""Debian packages as data: fetched with `apt-get download` (no root needed), unpacked, cached."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from lightning_llm.errors import UserError
from lightning_llm.io import atomic_dir
from lightning_llm.paths import cache_dir


def debian_packages(packages: list[str], name: str, why: str = "") -> Path:
    """The root of `packages` unpacked together under the cache folder `debian/<name>` (fetched once)."""
    target = cache_dir() / "debian" / name
    if (target / ".complete").exists():
        return target
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise UserError(f"{why or name} needs the Debian packages {packages} (apt-get download)")
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(target) as out:
        proc = subprocess.run(["apt-get", "download", *packages], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(debs) != len(packages):
            raise UserError(f"`apt-get download {' '.join(packages)}` failed: "
                            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
        (out / ".complete").write_text("\n".join(d.name for d in debs) + "\n")
    return target
