"""Smoke test of benchmarks/bus.py: every row runs to the end (no figures are checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bus.py"


def test_bus_benchmark_quick_prints_every_row() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for label in ("100 B event", "64 KB spectrum", "512 KB frame", "100 B x100 batch"):
        assert any(line.startswith(label) for line in lines), proc.stdout
    assert "raw REQ/REP" in proc.stdout and "dkl.bus (worker)" in proc.stdout
