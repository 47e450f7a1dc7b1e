"""`dkl keys init` in-process and `dkl bus` as a real process (signals, exit within 2 s)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dkl.bus import ProxyEndpoints, load_keypair
from dkl.bus._security import read_role
from dkl.bus.testing import check_pubsub
from dkl.main import main


def test_keys_init_writes_trusted_pair(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "init", "alice", "--role", "operator", "--dir", str(tmp_path)]) == 0
    assert "alice.key_secret" in capsys.readouterr().out
    assert load_keypair(tmp_path / "alice.key_secret").public
    assert read_role(tmp_path / "authorized_keys" / "alice.key") == "operator"
    assert main(["keys", "init", "alice", "--role", "operator", "--dir", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_bus_refuses_open_bind_without_curve(capsys: pytest.CaptureFixture) -> None:
    assert main(["bus", "--frontend", "tcp://0.0.0.0:0", "--backend", "tcp://127.0.0.1:0"]) == 2
    assert "insecure" in capsys.readouterr().err


def _read_lines(proc: subprocess.Popen, n: int, timeout: float) -> list[str]:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < n and sel.select(max(0.0, deadline - time.monotonic())):
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    sel.close()
    return data.decode().splitlines()


_LIBRARY_PROXY = (
    "import sys; from dkl.bus import run_proxy; "
    "sys.exit(run_proxy('tcp://127.0.0.1:0', 'tcp://127.0.0.1:0', "
    "announce=lambda s: print(s, flush=True)))"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", _LIBRARY_PROXY],
        [
            sys.executable,
            "-m",
            "dkl",
            "bus",
            "--frontend",
            "tcp://127.0.0.1:0",
            "--backend",
            "tcp://127.0.0.1:0",
        ],
    ],
    ids=["run_proxy", "dkl-bus"],
)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_proxy_process_serves_and_exits_on_signal(command: list[str], sig: signal.Signals) -> None:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = _read_lines(proc, 2, timeout=60)
        assert len(lines) == 2, (lines, proc.poll())
        endpoints = ProxyEndpoints(lines[0].split()[-1], lines[1].split()[-1])
        assert all(e.startswith("tcp://127.0.0.1:") for e in endpoints.__dict__.values())
        check_pubsub(endpoints)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        rest = proc.stdout.read().decode()
        # the process measures signal -> sockets closed itself (the machine may be loaded)
        assert float(rest.split("stopped ")[1].split()[0]) < 2.0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
