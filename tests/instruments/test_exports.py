"""Every public name of dkl.instruments resolves, and the layering holds."""

from __future__ import annotations

import ast
from pathlib import Path

import dkl.instruments as instruments

SOURCE = Path(instruments.__file__).resolve().parent


def test_every_public_name_resolves() -> None:
    for name in instruments.__all__:
        assert getattr(instruments, name) is not None, name


def test_instruments_import_only_bus_and_dsl_of_ours() -> None:
    for path in SOURCE.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("dkl.") or name == "dkl":
                    assert name.split(".")[1] in ("bus", "dsl", "instruments"), f"{path}: {name}"
