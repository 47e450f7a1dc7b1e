"""`dkl run` end to end: separate processes on loopback, every example, every built-in."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dkl.agent.processes import dkl_command
from dkl.bus import read_log
from dkl.dsl import BUILTIN, compile_source, read_source
from dkl.dsl.plan import Plan

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "experiments").glob("*.dkl"))
ONE_LINER = "scalarize ratio(peak(1), peak(2)); acquire EI; stop after 200\n"

pytestmark = pytest.mark.slow


def dkl_run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `dkl ARGS` in its own process group; the whole group dies on a timeout."""
    proc = subprocess.Popen(dkl_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"dkl {' '.join(args)} timed out:\n{out[-3000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


def check_run_dir(run_dir: Path, expected: int | None) -> None:
    messages = read_log(run_dir / "journal.log")
    assert [m.seq for m in messages] == list(range(len(messages))), "journal has gaps"
    topics = [m.topic for m in messages]
    assert topics[0] == "run.start" and topics.count("run.stop") == 1
    assert messages[-1].body["exit_status"] == "success", messages[-1].body
    results = np.load(run_dir / "results.npz")
    n = len(results["positions"])
    if expected is not None:
        assert n == expected
    assert topics.count("run.event") == n
    assert len({tuple(p) for p in results["positions"]}) == n, "a point was measured twice"
    assert results["prediction"].shape == results["survey"].shape
    assert (run_dir / "report.html").exists() and (run_dir / "plan.dkl").exists()


def compile_example(path: Path) -> Plan | None:
    """The example's plan; None when only its dataset (in ../shared/data) is absent."""
    result = compile_source(read_source(path), str(path))
    if result.plan is None:
        missing = [d for d in result.errors if d.message.startswith("dataset file not found")]
        assert result.errors and missing == result.errors, result.errors
    return result.plan


def test_examples_cover_every_builtin_dataset():
    plans = [compile_example(p) for p in EXAMPLES]
    assert set(BUILTIN) <= {plan.instrument.name for plan in plans if plan is not None}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_runs(example: Path, tmp_path: Path):
    plan = compile_example(example)
    if plan is None:
        pytest.skip(f"{example.name}: its dataset is absent (../shared/data is not here)")
    if plan.instrument.kind == "nion":
        pytest.importorskip("nionswift_plugin.usim", reason="the [nion] extra is not installed")
    out = tmp_path / "run"
    result = dkl_run(["run", str(example), "--speed", "0", "--out", str(out), "--seed", "1"])
    assert result.returncode == 0, result.stdout[-4000:]
    assert "report:" in result.stdout
    bounded = plan.max_measurements if all(s.kind == "after" for s in plan.stop) else None
    check_run_dir(out, bounded)


def test_the_mission_one_liner_runs_as_written(tmp_path: Path):
    path = tmp_path / "mission.dkl"
    path.write_text(ONE_LINER)
    out = tmp_path / "run"
    result = dkl_run(["run", str(path), "--speed", "0", "--out", str(out)])
    assert result.returncode == 0, result.stdout[-4000:]
    check_run_dir(out, 200)
    assert "tcp://127.0.0.1:" in result.stdout  # it told us where to subscribe


def test_a_broken_plan_is_refused_before_anything_starts(tmp_path: Path):
    path = tmp_path / "bad.dkl"
    path.write_text("scalarize peek(1)\n")
    result = dkl_run(["run", str(path), "--speed", "0", "--out", str(tmp_path / "run")], 60)
    assert result.returncode == 1
    assert "did you mean `peak`?" in result.stdout
    assert not (tmp_path / "run").exists()


def test_ctrl_c_stops_the_run_cleanly(tmp_path: Path):
    path = tmp_path / "long.dkl"
    path.write_text("scalarize peak(3 eV .. 4.5 eV)\nexposure 20 ms\nstop after 2000\n")
    out = tmp_path / "run"
    proc = subprocess.Popen(dkl_command("run", str(path), "--speed", "1", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until measurements flow, then interrupt
            lines.append(line)
            if "  10/2000" in line or " 10/2000" in line:
                proc.send_signal(signal.SIGINT)
                break
        out_rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(lines) + (out_rest or "")
    assert proc.returncode == 0, text[-3000:]
    messages = read_log(out / "journal.log")
    stop = [m.body for m in messages if m.topic == "run.stop"]
    assert len(stop) == 1 and stop[0]["exit_status"] == "stopped"
    assert [m.seq for m in messages] == list(range(len(messages)))
    assert (out / "results.npz").exists()
