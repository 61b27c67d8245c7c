"""The wheel must carry every subpackage and every config: a user's `pip install .` gets what tests see."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_for_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lightning_llm").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert {"lightning_llm.conf", "lightning_llm.recipes"} <= listed


def test_the_built_wheel_holds_every_config_and_recipe(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("lightning_llm-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"lightning_llm/{p.relative_to(ROOT)}" for folder in ("conf", "recipes")
              for p in (ROOT / folder).rglob("*.yaml")}
    assert wanted and not wanted - inside, f"missing from the wheel: {sorted(wanted - inside)}"
    modules = {f"{p.relative_to(ROOT)}" for folder in ("lightning_llm", "hydra_plugins")
               for p in (ROOT / folder).rglob("*.py")}
    assert not modules - inside, f"missing from the wheel: {sorted(modules - inside)}"
