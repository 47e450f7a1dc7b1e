"""Child processes that announce readiness on stdout, and their clean shutdown.

`dkl run` and the agent start servers (bus proxy, instrument) as separate processes. Each
prints one line `READY <endpoint>` once bound; we wait for that line with a deadline
instead of sleeping, and stop children with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from dkl.dsl.plan import Plan


class ProcessError(RuntimeError):
    """A child process failed to start or announce readiness in time."""


@dataclass
class Child:
    """A started child: its process, the endpoints it announced, and its output so far."""

    name: str
    process: subprocess.Popen[str]
    endpoints: list[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return self.endpoints[0]

    def alive(self) -> bool:
        return self.process.poll() is None


#: Runs the CLI with this interpreter; drops the current directory from sys.path so a
#: stray `timeit.py` (say) in the user's folder cannot shadow a library module.
_LAUNCH = "import sys; sys.path[:1] = []; from dkl.main import main; sys.exit(main())"


def dkl_command(*args: str) -> list[str]:
    """argv that runs `dkl ARGS` with this interpreter (no reliance on PATH or the cwd)."""
    return [sys.executable, "-c", _LAUNCH, *args]


def start(name: str, argv: Sequence[str], timeout: float = 60.0,
          ready: Sequence[str] = ("READY",), env: dict[str, str] | None = None) -> Child:
    """Start `argv` and wait until it printed, in order, one line per `ready` prefix.

    The last word of each such line is an endpoint (`READY tcp://127.0.0.1:5710`).

    Raises:
        ProcessError: it exited or stayed silent past `timeout`; its output is in the message.
    """
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {}),
                   "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, bufsize=1, env=environment, start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    child = Child(name, process, [])

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    child.reader = threading.Thread(target=pump, name=f"{name}-stdout", daemon=True)
    child.reader.start()
    while len(child.endpoints) < len(ready):
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            stop(child)
            raise ProcessError(f"{name} did not become ready within {timeout:g} s:\n"
                               + "\n".join(child.lines[-20:])) from None
        if line is None:
            process.wait(timeout=5)
            raise ProcessError(f"{name} exited with status {process.returncode} before it was "
                               "ready:\n" + "\n".join(child.lines[-20:]))
        child.lines.append(line)
        if line.startswith(ready[len(child.endpoints)]) and len(line.split()) > 1:
            child.endpoints.append(line.split()[-1])
    return child


def stop(child: Child, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (SIGTERM), wait up to `timeout`, then SIGKILL; returns the exit status."""
    p = child.process
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=timeout)
    if child.reader is not None:  # the reader ends at EOF once the process is gone
        child.reader.join(timeout)
    if p.stdout is not None and (child.reader is None or not child.reader.is_alive()):
        p.stdout.close()
    return int(p.returncode)


def sim_arguments(plan: Plan, speed: float, noise: str, deadman_s: float,
                  bus: str | None = None) -> list[str]:
    """`dkl instrument ...` arguments that start the instrument a plan names."""
    inst = plan.instrument
    publish = ["--bus", bus] if bus else []
    if inst.kind == "nion":
        args = ["instrument", "nion"] + (["--sim"] if inst.name == "nion-sim" else [])
        return [*args, "--modality", plan.modality, "--bind", "tcp://127.0.0.1:0", *publish]
    dataset = f"builtin:{inst.name}" if inst.kind == "builtin" else str(inst.path)
    args = ["instrument", "sim", dataset, "--speed", f"{speed:g}", "--noise", noise,
            "--bind", "tcp://127.0.0.1:0", "--deadman", f"{deadman_s:g}", *publish]
    if inst.survey:
        args += ["--survey", inst.survey]
    return args
