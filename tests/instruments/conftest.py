"""Fixtures: a real bus proxy on free loopback ports and instrument servers in subprocesses."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from dkl.bus import Proxy

START_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0") as running:
        yield running


def read_ready(proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> str:
    """Wait for the `READY <endpoint>` line of a server process; return the endpoint."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.put(line)
        except (ValueError, OSError):  # the fixture closed the pipe at teardown
            pass
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the instrument server printed no READY line in time") from None
        if line.startswith("READY "):
            return line.split()[1]
        if line == "":
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the instrument server exited before READY:\n{stderr}")


@pytest.fixture
def spawn() -> Iterator[Callable[..., tuple[subprocess.Popen, str]]]:
    """Start `dkl instrument sim ARGS...` processes; each is killed at teardown.

    They run as `python -m dkl.instruments`, the same entry point without the rest
    of the `dkl` command line.
    """
    procs: list[subprocess.Popen] = []

    def _spawn(*args: str) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dkl.instruments", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc, read_ready(proc)

    try:
        yield _spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
