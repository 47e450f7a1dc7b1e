"""The agent daemon as a process: control from another process, and crash resume."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dkl.agent import processes
from dkl.bus import RemoteError, RpcClient, Subscriber, read_log
from dkl.instruments.client import InstrumentClient

pytestmark = pytest.mark.slow

PLAN = ("scalarize peak(3 eV .. 4.5 eV)\nacquire UCB\nseed random 4\n"
        "model dkl hidden=[16] steps=30\nstop after {n}\n")


def wait_for(sub: Subscriber, predicate, timeout: float = 300.0):
    """The first run document satisfying `predicate` (a bounded wait on the bus)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.recv(timeout=1.0)
        if msg is not None and predicate(msg):
            return msg
    raise AssertionError("the expected document did not arrive in time")


def test_pause_resume_stop_from_another_process(proxy, launch, tmp_path: Path):
    bus_in, bus_out = proxy.endpoints.frontend, proxy.endpoints.backend
    instrument = launch.instrument(bus=bus_in)
    agent = launch.agent(str(tmp_path), instrument, bus=bus_in)
    rng = random.Random(4)
    with Subscriber(bus_out, ["run."]) as sub, RpcClient(agent.endpoint, timeout=30) as ctl, \
            InstrumentClient(instrument) as inst:
        run = ctl.call("submit", source=PLAN.format(n=40), seed=2)
        for _ in range(3):
            k = rng.randint(1, 4)
            wait_for(sub, lambda m, k=k: m.topic == "run.event" and m.body["index"] >= k)
            ctl.call("pause", now=rng.random() < 0.5)
            wait_for(sub, lambda m: m.topic == "run.interruption"
                     and m.body.get("state") == "paused")
            assert inst.status()["blanked"], "the beam must be blanked while paused"
            with pytest.raises(RemoteError) as err:
                ctl.call("pause")  # already paused: refused with a code, state unchanged
            assert err.value.code == "illegal_transition"
            ctl.call("resume")
        wait_for(sub, lambda m: m.topic == "run.event" and m.body["index"] >= 20)
        ctl.call("abort", reason="test")
        stop = wait_for(sub, lambda m: m.topic == "run.stop")
        assert stop.body["exit_status"] == "aborted"
        assert inst.status()["blanked"]
    messages = read_log(Path(run["run_dir"]) / "journal.log")
    assert [m.topic for m in messages].count("run.stop") == 1
    assert [m.seq for m in messages] == list(range(len(messages)))
    actions = [m.body["action"] for m in messages if m.topic == "run.interruption"]
    assert actions.count("pause") == 3 and actions.count("resume") == 3
    assert actions[-1] == "abort"
    positions = [(m.body["x"], m.body["y"]) for m in messages if m.topic == "run.event"]
    assert len(positions) == len(set(positions))


def test_sigkill_the_agent_twenty_times_and_resume(proxy, launch, tmp_path: Path):
    """Every planned measurement exactly once, and a gap-free journal, across 20 crashes."""
    total = 60
    bus_in, bus_out = proxy.endpoints.frontend, proxy.endpoints.backend
    instrument = launch.instrument(bus=bus_in)
    run_dir = tmp_path / "run"
    rng = random.Random(11)
    kills = sorted(rng.sample(range(2, total - 2), 20))
    with Subscriber(bus_out, ["run."]) as sub:
        agent = launch.agent(str(tmp_path), instrument, bus=bus_in)
        with RpcClient(agent.endpoint, timeout=30) as ctl:
            ctl.call("submit", source=PLAN.format(n=total), seed=5, run_dir=str(run_dir))
        for k in kills:
            wait_for(sub, lambda m, k=k: m.topic == "run.event" and m.body["index"] >= k)
            processes.stop(agent, sig=signal.SIGKILL)
            launch.children.remove(agent)
            agent = launch.agent(str(tmp_path), instrument, bus=bus_in)
            with RpcClient(agent.endpoint, timeout=30) as ctl:
                ctl.call("resume_run", run_dir=str(run_dir))
        stop = wait_for(sub, lambda m: m.topic == "run.stop", timeout=300)
        assert stop.body["exit_status"] == "success", stop.body
    processes.stop(agent)
    messages = read_log(run_dir / "journal.log")
    assert [m.seq for m in messages] == list(range(len(messages))), "journal has a gap"
    events = [m.body for m in messages if m.topic == "run.event"]
    assert [e["index"] for e in events] == list(range(total))
    positions = [(e["x"], e["y"]) for e in events]
    assert len(set(positions)) == total, "a point was measured twice"
    assert [m.topic for m in messages].count("run.stop") == 1
    assert [m.topic for m in messages].count("run.start") == 1
    resumes = [m.body for m in messages if m.topic == "run.interruption"]
    assert len(resumes) == 20 and all(r["action"] == "resume" for r in resumes)


def test_control_commands_from_the_command_line(proxy, launch, tmp_path: Path, capsys):
    from dkl.main import main

    bus_in = proxy.endpoints.frontend
    instrument = launch.instrument(bus=bus_in)
    agent = launch.agent(str(tmp_path), instrument, bus=bus_in)
    plan = tmp_path / "plan.dkl"
    plan.write_text(PLAN.format(n=400) + "exposure 20 ms\n")
    with Subscriber(proxy.endpoints.backend, ["run."]) as sub:
        assert main(["submit", str(plan), "--agent", agent.endpoint]) == 0
        assert "queued run" in capsys.readouterr().out
        wait_for(sub, lambda m: m.topic == "run.event" and m.body["index"] >= 2)
        assert main(["status", "--agent", agent.endpoint, "--json"]) == 0
        assert '"state": "running"' in capsys.readouterr().out
        assert main(["pause", "--agent", agent.endpoint]) == 0
        wait_for(sub, lambda m: m.topic == "run.interruption" and m.body["state"] == "paused")
        assert main(["pause", "--agent", agent.endpoint]) == 1
        assert "illegal_transition" in capsys.readouterr().err
        assert main(["resume", "--agent", agent.endpoint]) == 0
        assert main(["intervene", "measure", "7", "--agent", agent.endpoint]) == 2
        assert main(["intervene", "measure", "40", "50", "--agent", agent.endpoint]) == 0
        asked = wait_for(sub, lambda m: m.topic == "run.interruption"
                         and m.body.get("what") == "measure")
        assert asked.body["args"] == {"x": 40.0, "y": 50.0}
        assert main(["intervene", "exposure", "0.01", "--agent", agent.endpoint]) == 0
        wait_for(sub, lambda m: m.topic == "run.interruption" and m.body.get("what") == "set")
        assert main(["stop", "--agent", agent.endpoint, "--reason", "done here"]) == 0
        stop = wait_for(sub, lambda m: m.topic == "run.stop")
    assert stop.body["exit_status"] == "stopped" and stop.body["reason"] == "done here"
    bad = tmp_path / "bad.dkl"
    bad.write_text("scalarize peak(1)\nmeasure 4dstem\n")
    assert main(["submit", str(bad), "--agent", agent.endpoint]) == 1
    assert "bad_plan" in capsys.readouterr().err
    assert main(["status", "--agent", "tcp://127.0.0.1:1"]) == 2  # nobody there


def test_dkl_resume_continues_a_run_whose_processes_all_died(tmp_path: Path):
    plan = tmp_path / "plan.dkl"
    plan.write_text(PLAN.format(n=40) + "exposure 30 ms\n")
    out = tmp_path / "run"
    proc = subprocess.Popen(processes.dkl_command("run", str(plan), "--out", str(out),
                                                  "--no-report"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if " 10/40" in line:
                break
    finally:  # a power cut: every process of the run dies at once
        for pid in _process_tree(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    before = [m for m in read_log(out / "journal.log") if m.topic == "run.event"]
    assert 10 <= len(before) < 40
    result = subprocess.run(processes.dkl_command("resume", str(out), "--speed", "0",
                                                  "--no-report"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    messages = read_log(out / "journal.log")
    assert [m.seq for m in messages] == list(range(len(messages)))
    events = [m.body for m in messages if m.topic == "run.event"]
    assert len(events) == 40 and len({(e["x"], e["y"]) for e in events}) == 40
    assert [(e["x"], e["y"]) for e in events[: len(before)]] == [
        (m.body["x"], m.body["y"]) for m in before]


def _process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (children are in their own sessions)."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    tree.append(int(entry.name))
                    frontier.append(int(entry.name))
    return tree
