"""The embedded default: `dkl run FILE` and `dkl resume RUN_DIR`.

Starts the bus proxy, the instrument the plan names and the agent daemon as separate
processes on loopback (each announces readiness; nothing sleeps), submits the plan,
follows the run on the bus with a progress bar, writes the report, and shuts everything
down: also on Ctrl-C, which stops the run cleanly (a second Ctrl-C aborts it).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dkl.agent import processes
from dkl.agent.processes import sim_arguments
from dkl.bus import BusError, RemoteError, RpcClient, Subscriber
from dkl.dsl import Plan
from dkl.viewer.busio import to_document
from dkl.viewer.state import RunState
from dkl.viewer.watch import progress_bar


@dataclass
class EmbeddedConfig:
    """What `dkl run` / `dkl resume` were asked to do."""

    plan: Plan | None = None
    source: str = ""
    path: str | None = None
    resume_dir: Path | None = None
    out: Path | None = None
    seed: int = 0
    speed: float = 1.0
    bus: str | None = None  # an existing proxy: "FRONTEND,BACKEND"
    noise: str = "poisson"
    deadman_s: float = 10.0
    report: bool = True
    quiet: bool = False
    timeout_s: float = 120.0  # for a child to become ready
    children: list[processes.Child] = field(default_factory=list)


def _say(config: EmbeddedConfig, text: str) -> None:
    if not config.quiet:
        print(text, file=sys.stderr, flush=True)


def run_embedded(config: EmbeddedConfig) -> int:
    """Run one experiment end to end; returns 0 on success, 1 on a failed run, 130 on abort."""
    interrupts = {"count": 0}
    previous = signal.getsignal(signal.SIGINT)
    stop_event = threading.Event()

    def on_sigint(*_: object) -> None:
        interrupts["count"] += 1
        stop_event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_sigint)
        signal.signal(signal.SIGTERM, on_sigint)
    try:
        return _run(config, interrupts, stop_event)
    except (processes.ProcessError, BusError) as err:
        print(f"dkl run: {err}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(config.children):
            processes.stop(child)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(config: EmbeddedConfig, interrupts: dict[str, int], stop_event: threading.Event) -> int:
    if config.bus:
        frontend, _, backend = config.bus.partition(",")
        if not backend:
            raise BusError("--bus takes FRONTEND,BACKEND (the two endpoints `dkl bus` prints)")
    else:  # the plan's `publish` says where viewers subscribe
        plan = config.plan
        assert plan is not None
        bus = processes.start("bus", processes.dkl_command(
            "bus", "--frontend", "tcp://127.0.0.1:0",
            "--backend", plan.publish or "tcp://127.0.0.1:0"),
            timeout=config.timeout_s, ready=("publishers", "subscribers"))
        config.children.append(bus)
        frontend, backend = bus.endpoints
    plan = config.plan
    assert plan is not None
    instrument = None
    if plan.instrument.kind != "remote":
        child = processes.start("instrument", processes.dkl_command(*sim_arguments(
            plan, config.speed, config.noise, config.deadman_s, frontend)),
            timeout=config.timeout_s)
        config.children.append(child)
        instrument = child.endpoint
    agent = processes.start("agent", processes.dkl_command(
        "agent", "--control", "tcp://127.0.0.1:0", "--bus", frontend,
        "--runs", str(config.out.parent if config.out else Path("runs"))),
        timeout=config.timeout_s)
    config.children.append(agent)
    control = agent.endpoint
    _say(config, f"bus: publishers {frontend}, subscribers {backend}")
    _say(config, f"watch it: dkl watch --bus {backend} --snapshot {control}")
    with Subscriber(backend, ["run."], snapshots={"agent": control}) as sub, \
            RpcClient(control, timeout=30.0) as client:
        if config.resume_dir is not None:
            reply = client.call("resume_run", run_dir=str(config.resume_dir), instrument=instrument)
        else:
            reply = client.call("submit", source=config.source, path=config.path,
                                seed=config.seed, instrument=instrument,
                                run_dir=str(config.out) if config.out else None)
        run_id, run_dir = reply["run_id"], Path(reply["run_dir"])
        _say(config, f"run {run_id} -> {run_dir}")
        state = _follow(config, sub, client, run_id, interrupts, stop_event)
        with contextlib.suppress(BusError, RemoteError):
            client.call("shutdown", timeout=5.0)
    stop = state.stop or {}
    status = stop.get("exit_status", "failed")
    _say(config, f"\nrun {status}: {stop.get('reason', 'no run_stop received')}")
    _say(config, f"results: {run_dir / 'results.npz'}")
    if config.report and (run_dir / "results.npz").exists():
        from dkl.viewer.report import write_report

        _say(config, f"report:  {write_report(run_dir)}")
    return {"success": 0, "stopped": 0, "aborted": 130}.get(status, 1)


def _follow(config: EmbeddedConfig, sub: Subscriber, client: RpcClient, run_id: str,
            interrupts: dict[str, int], stop_event: threading.Event) -> RunState:
    """Show progress until the run's `run.stop` arrives; Ctrl-C stops, twice aborts."""
    state = RunState(run_id)
    asked = 0
    last_draw = 0.0
    tty = sys.stderr.isatty()
    shown = -1
    sub.catch_up("agent")
    while state.stop is None:
        if interrupts["count"] > asked:
            asked = interrupts["count"]
            action = "stop" if asked == 1 else "abort"
            _say(config, f"\n{action}ping the run (Ctrl-C again to abort)" if asked == 1
                 else "\naborting the run")
            with contextlib.suppress(RemoteError):
                client.call(action, reason="Ctrl-C")
        msg = sub.recv(timeout=0.5)
        if msg is None:
            if not _agent_alive(config):
                _say(config, "\nthe agent process died")
                break
            continue
        doc = to_document(msg)
        if doc.body.get("run_id") != run_id:
            continue
        state.apply(doc)
        now = time.monotonic()
        if config.quiet:
            continue
        if tty and (now - last_draw > 0.2 or state.stop is not None):
            print("\r" + progress_bar(state), end="", file=sys.stderr, flush=True)
            last_draw = now
        elif not tty and (state.num_events // 10 > shown or state.stop is not None):
            shown = state.num_events // 10  # a log line every 10 measurements
            print(progress_bar(state), file=sys.stderr, flush=True)
    stop_event.clear()
    return state


def _agent_alive(config: EmbeddedConfig) -> bool:
    return all(c.alive() for c in config.children if c.name == "agent")
