"""The agent daemon: a control socket, a queue of plans, one run at a time.

`dkl agent` runs this next to the microscope. Operators submit `.dkl` sources and steer
the current run (pause, resume, stop, abort, interventions); viewers ask for its status
and for snapshots of the run's journal. A plan that fails ends that run, never the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dkl.agent import processes
from dkl.agent.control import Command, Control
from dkl.agent.journal import JournalState, open_recorder, read_journal
from dkl.agent.loop import Experiment, Outcome
from dkl.agent.processes import sim_arguments
from dkl.bus import (
    AGENT_CONTROL_ROLES,
    OPERATOR,
    ClientSecurity,
    RpcServer,
    ServerSecurity,
    iter_log,
    snapshot_page,
)
from dkl.dsl import Plan, compile_source
from dkl.instruments.client import InstrumentClient

log = logging.getLogger(__name__)

ROLES = {**AGENT_CONTROL_ROLES, "intervene": frozenset({OPERATOR}),
         "shutdown": frozenset({OPERATOR})}
METHODS = ("submit", "status", "pause", "resume", "stop", "abort", "intervene", "snapshot",
           "shutdown")


class AgentError(Exception):
    """A refused control request, with a code the caller can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = False


@dataclass
class AgentConfig:
    """Where the daemon listens, publishes and writes.

    `instrument`: address of an instrument server used for plans that do not name a remote
    one; without it the daemon starts `dkl instrument sim` for built-in and file plans.
    """

    control: str = "tcp://127.0.0.1:0"
    bus: str | None = None
    runs: Path = Path("runs")
    instrument: str | None = None
    speed: float = 1.0
    noise: str = "poisson"
    deadman_s: float = 10.0
    security: ServerSecurity | None = None
    insecure: bool = False
    bus_security: ClientSecurity | None = None  # CURVE towards the bus proxy
    instrument_security: ClientSecurity | None = None  # CURVE towards the instrument


@dataclass
class Job:
    plan: Plan
    run_id: str
    run_dir: Path
    seed: int
    instrument: str | None = None
    resume: JournalState | None = None
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Agent:
    """The service behind the control socket (its public methods are the RPC methods)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.history: list[Job] = []
        self.current: Job | None = None
        self.experiment: Experiment | None = None
        self.control: Control | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # --- control methods (RPC) -----------------------------------------------------------
    def submit(self, source: str, path: str | None = None, seed: int | None = None,
               instrument: str | None = None, run_dir: str | None = None) -> dict[str, Any]:
        """Check a plan and queue it; returns its run id and run directory."""
        result = compile_source(source, path)
        if result.plan is None:
            text = "\n".join(d.render(path or "<submitted>", source) for d in result.errors)
            raise AgentError("bad_plan", text)
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        directory = Path(run_dir) if run_dir else self.config.runs / run_id
        job = Job(result.plan, run_id, directory, int(seed if seed is not None else 0),
                  instrument)
        return self._enqueue(job)

    def resume_run(self, run_dir: str, instrument: str | None = None) -> dict[str, Any]:
        """Queue the continuation of an interrupted run from its journal."""
        state = read_journal(Path(run_dir))
        if state.stopped is not None:
            raise AgentError("finished", f"{run_dir} already ended "
                             f"({state.stopped.get('exit_status')}: {state.stopped.get('reason')})")
        plan = Plan.from_dict(state.start["plan"])
        plan = _with_source(plan, state.start["plan_source"])
        job = Job(plan, state.run_id, Path(run_dir), int(state.start.get("seed", 0)),
                  instrument, resume=state)
        return self._enqueue(job)

    def _enqueue(self, job: Job) -> dict[str, Any]:
        with self._lock:
            self.history.append(job)
        self.jobs.put(job)
        return {"run_id": job.run_id, "run_dir": str(job.run_dir), "queued": self.jobs.qsize()}

    def status(self) -> dict[str, Any]:
        exp, job = self.experiment, self.current
        out: dict[str, Any] = {"queued": self.jobs.qsize(), "state": "idle", "run_id": None}
        if exp is not None and job is not None:
            out.update(state=exp.states.state.value, run_id=job.run_id, run_dir=str(job.run_dir),
                       measurements=exp.record.count, max_measurements=exp.plan.max_measurements,
                       best=exp.record.best(exp.plan.maximize))
        finished = [j for j in self.history if j.outcome is not None]
        if finished:
            last = finished[-1]
            assert last.outcome is not None
            out["last"] = {"run_id": last.run_id, "exit_status": last.outcome.exit_status,
                           "reason": last.outcome.reason, "run_dir": str(last.run_dir)}
        return out

    def pause(self, now: bool = False, reason: str = "") -> dict[str, Any]:
        return self._send(Command("pause", reason=reason, args={"now": bool(now)}))

    def resume(self, reason: str = "") -> dict[str, Any]:
        return self._send(Command("resume", reason=reason))

    def stop(self, reason: str = "") -> dict[str, Any]:
        return self._send(Command("stop", reason=reason))

    def abort(self, reason: str = "") -> dict[str, Any]:
        return self._send(Command("abort", reason=reason))

    def intervene(self, action: str, args: dict[str, Any], reason: str = "") -> dict[str, Any]:
        """`measure` {x, y} next, `exclude` {x0, x1, y0, y1}, or `set` {exposure_s}."""
        if action not in ("measure", "exclude", "set"):
            raise AgentError("bad_arguments", f"unknown intervention {action!r} "
                             "(measure, exclude or set)")
        return self._send(Command(action, reason=reason, args=dict(args)))

    def _send(self, command: Command) -> dict[str, Any]:
        control, exp = self.control, self.experiment
        if control is None or exp is None:
            raise AgentError("no_run", "no run is in progress")
        state = exp.states.state.value
        legal = {"pause": {"running"}, "resume": {"paused", "pausing"},
                 "stop": {"running", "pausing", "paused"},
                 "abort": {"running", "pausing", "paused", "stopping", "idle"}}
        allowed = legal.get(command.action, {"running", "pausing", "paused"})
        if state not in allowed:
            raise AgentError("illegal_transition", f"cannot {command.action} a run that is "
                             f"{state}")
        control.send(command)
        return {"accepted": command.action, "state": state}

    def snapshot(self, since_seq: int = 0, src: str | None = None, epoch: int | None = None,
                 max_messages: int = 1000) -> dict[str, Any]:
        """Journal documents of the current (or last) run since `since_seq`."""
        job = self.current or (self.history[-1] if self.history else None)
        if job is None or not (job.run_dir / "journal.log").exists():
            return {"messages": [], "more": False, "next_seq": since_seq}
        source = _LogSource(job.run_dir / "journal.log")
        return snapshot_page(source, since_seq, src, epoch, max_messages)

    def shutdown(self) -> dict[str, Any]:
        self._closed.set()
        if self.control is not None:
            self.control.send(Command("stop", who="agent", reason="agent shutting down"))
        self.jobs.put(None)
        return {"shutting_down": True}

    # --- running -------------------------------------------------------------------------
    def serve_forever(self, stop: threading.Event) -> None:
        """Run queued jobs until `stop` is set or `shutdown` is called."""
        while not (stop.is_set() or self._closed.is_set()):
            try:
                job = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job is None:
                break
            self.execute(job)

    def execute(self, job: Job) -> Outcome:
        """Run one job to its end; failures end the job, never the daemon."""
        children: list[processes.Child] = []
        clients: list[InstrumentClient] = []
        recorder = None
        try:
            address = job.instrument or self._instrument_for(job.plan, children)
            secure = {"security": self.config.instrument_security}
            main_client = InstrumentClient(address, **secure)
            side_client = InstrumentClient(address, **secure)  # blank and heartbeat in parallel
            clients += [main_client, side_client]
            resume = job.resume
            recorder = open_recorder(job.run_dir, self.config.bus,
                                     epoch=resume.epoch if resume else None,
                                     first_seq=resume.next_seq if resume else 0,
                                     security=self.config.bus_security)
            if resume is None:
                (job.run_dir / "plan.dkl").write_text(job.plan.source, encoding="utf-8")
            self.control = Control(blank_now=side_client.blank)
            self.experiment = Experiment(job.plan, main_client, recorder, job.run_dir,
                                         seed=job.seed, control=self.control, run_id=job.run_id,
                                         resumed=resume.record if resume else None)
            self.current = job
            beat = threading.Event()
            threading.Thread(target=_heartbeats, args=(side_client, beat, self.config.deadman_s),
                             daemon=True, name="dkl-heartbeat").start()
            try:
                job.outcome = self.experiment.run()
            finally:
                beat.set()
        except Exception as err:
            log.exception("run %s could not start", job.run_id)
            job.outcome = Outcome("failed", f"{type(err).__name__}: {err}", 0, job.run_dir)
        finally:
            self.current = None
            for client in clients:
                client.close()
            if recorder is not None:
                recorder.close()
            for child in children:
                processes.stop(child)
            job.done.set()
        return job.outcome

    def _instrument_for(self, plan: Plan, children: list[processes.Child]) -> str:
        inst = plan.instrument
        if inst.kind == "remote" and inst.address:
            return inst.address
        if self.config.instrument:
            return self.config.instrument
        child = processes.start("instrument", processes.dkl_command(*sim_arguments(
            plan, self.config.speed, self.config.noise, self.config.deadman_s, self.config.bus)))
        children.append(child)
        return child.endpoint


class _LogSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    def since(self, since_seq: int) -> Any:
        return (m for m in iter_log(self.path) if m.seq >= since_seq)


def _heartbeats(client: InstrumentClient, stop: threading.Event, deadman_s: float) -> None:
    interval = max(0.2, min(1.0, deadman_s / 4))
    while not stop.wait(interval):
        try:
            client.heartbeat()
        except Exception as err:  # the run notices a dead instrument on its next call
            log.debug("heartbeat failed: %s", err)


def _with_source(plan: Plan, source: str) -> Plan:
    return replace(plan, source=source)


def serve_agent(config: AgentConfig) -> tuple[Agent, RpcServer]:
    """Start the control socket; the caller runs `agent.serve_forever`."""
    agent = Agent(config)
    server = RpcServer(agent, [*METHODS, "resume_run"], config.control,
                       roles={**ROLES, "resume_run": frozenset({OPERATOR})},
                       security=config.security, insecure=config.insecure).start()
    return agent, server


__all__ = ["Agent", "AgentConfig", "AgentError", "run_agent", "serve_agent"]


def run_agent(config: AgentConfig, announce: Any = print, stop: threading.Event | None = None
              ) -> int:
    """The body of `dkl agent`: serve until SIGINT/SIGTERM, ending the current run cleanly."""
    stop = stop or threading.Event()
    agent, server = serve_agent(config)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    runner = threading.Thread(target=agent.serve_forever, args=(stop,), name="dkl-runs")
    runner.start()
    try:
        announce(f"READY {server.endpoint}")
        while not stop.wait(0.5) and runner.is_alive():
            pass
    finally:
        stop.set()
        if agent.control is not None and agent.experiment is not None:
            with contextlib.suppress(Exception):
                agent.control.send(Command("stop", who="agent", reason="agent shut down"))
        runner.join(timeout=30)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
