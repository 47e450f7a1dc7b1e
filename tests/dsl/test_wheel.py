"""The built wheel installs and `dkl.dsl` imports from it, grammar included (no editable path)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import dkl.dsl, pathlib, sys
here = pathlib.Path(dkl.dsl.__file__).resolve()
assert str(here).startswith(sys.argv[1]), here
assert (here.parent / "grammar.lark").is_file()
r = dkl.dsl.compile_source("scalarize ratio(peak(1), peak(2)); acquire EI; stop after 200")
assert r.plan is not None and r.diagnostics == [], r.diagnostics
from dkl.main import build_parser
print("ok", r.plan.acquire.name)
"""


def local_setuptools_builds() -> bool:
    """Whether this environment's setuptools meets pyproject's build requirement."""
    try:
        have = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    need = re.search(r'"setuptools>=(\d+)', (ROOT / "pyproject.toml").read_text())
    return need is not None and have >= int(need.group(1))


@pytest.mark.slow
def test_installed_wheel_imports(tmp_path: Path) -> None:
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # build in this environment when its setuptools will do (no network needed), else isolated
    isolation = ["--no-build-isolation"] if local_setuptools_builds() else []
    # build from a copy, so that setuptools' build/ folder never lands in the checkout
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".hypothesis", "runs",
        "venv", ".venv", "tests", "test-artifacts"))
    built = subprocess.run([*pip, "wheel", "--no-deps", *isolation, "-q", "-w", str(wheels),
                            str(source)], cwd=tmp_path, timeout=240, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("dkl_microscope-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=240, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, "-c", PROBE, str(target)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok ei"
