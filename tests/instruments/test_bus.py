"""The instrument over the real bus: conformance, errors, faults, dead-man's switch, death."""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dkl.bus import Message, Proxy, Subscriber
from dkl.instruments.client import InstrumentClient
from dkl.instruments.datasets import load_builtin
from dkl.instruments.faults import Faults
from dkl.instruments.launch import config_from_args, run_sim
from dkl.instruments.protocols import InstrumentError
from dkl.instruments.server import DIED_EXIT_STATUS, InstrumentServer, serve_instrument
from dkl.instruments.sim import SimMicroscope
from dkl.instruments.simargs import add_sim_arguments
from dkl.instruments.testing import check_instrument


@pytest.fixture
def served(proxy: Proxy) -> Iterator:
    """Start an in-thread server around a small simulated microscope; yield a client."""
    started: list[tuple[InstrumentServer, InstrumentClient, SimMicroscope]] = []

    def _serve(name: str = "plasmonic", timeout_s: float = 5.0, **sim_options: object):
        options = {"detector": 16} if name == "4dstem" else {}
        sim_options.setdefault("speed", 0)
        sim = SimMicroscope(load_builtin(name, size=12, **options), **sim_options)  # type: ignore[arg-type]
        server = serve_instrument(sim, bus=proxy.endpoints.frontend, heartbeat_interval_s=0.2)
        client = InstrumentClient(server.endpoint, timeout_s=timeout_s)
        started.append((server, client, sim))
        return client, sim

    yield _serve
    for server, client, sim in started:
        client.close()
        server.stop()
        sim.close()


def _wait_for(sub: Subscriber, predicate, timeout: float) -> Message:
    """The first message satisfying `predicate` within `timeout` seconds (else fail)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = sub.recv(timeout=left)
        if msg is not None and predicate(msg):
            return msg
    raise AssertionError("the expected bus message did not arrive in time")


@pytest.mark.parametrize("name", ["plasmonic", "core-loss", "4dstem"])
def test_conformance_over_the_bus(served, name: str) -> None:
    client, _ = served(name)
    check_instrument(client)


def test_remote_errors_keep_code_and_retryable(served) -> None:
    client, _ = served()
    with pytest.raises(InstrumentError) as info:
        client.acquire(0, 99, 0.01)
    assert info.value.code == "out_of_range" and info.value.retryable is False
    with pytest.raises(InstrumentError) as info:
        client.acquire(1.5, 0, 0.01)
    assert info.value.code == "bad_request"


def test_dropped_reply_and_hang_become_timeouts(served) -> None:
    client, sim = served(
        timeout_s=0.4,
        faults=Faults(drop_reply_at=frozenset({0}), hang_at=frozenset({1}), hang_s=1.0),
    )
    for _ in range(2):
        with pytest.raises(InstrumentError) as info:
            client.acquire(1, 1, 0.001)
        assert info.value.code == "timeout" and info.value.retryable
    with InstrumentClient(client.address, timeout_s=5.0) as patient:
        m = patient.acquire(2, 2, 0.001)  # waits out the hang; the instrument recovers
    assert m["x"] == 2 and sim.snapshot()["acquisitions"] == 3


def test_status_and_heartbeat_published(served, proxy: Proxy) -> None:
    with Subscriber(proxy.endpoints.backend, ["instrument."]) as sub:
        client, _ = served()
        beat = _wait_for(sub, lambda m: m.topic == "instrument.heartbeat", 5.0)
        assert beat.src == "instrument" and "blanked" in beat.body
        client.unblank()
        msg = _wait_for(sub, lambda m: m.body.get("event") == "unblank", 5.0)
        assert msg.topic == "instrument.status" and msg.body["blanked"] is False


def test_deadman_in_thread_server(served, proxy: Proxy) -> None:
    with Subscriber(proxy.endpoints.backend, ["instrument.status"]) as sub:
        client, _ = served(deadman_s=0.3)
        client.unblank()
        quiet_from = time.monotonic()
        msg = _wait_for(sub, lambda m: m.body.get("event") == "deadman", 5.0)
        assert time.monotonic() - quiet_from >= 0.3 - 0.05
        assert msg.body["blanked"] is True and msg.body["blanked_by"] == "deadman"


_CLIENT = """
import sys
from dkl.instruments.client import InstrumentClient
scope = InstrumentClient(sys.argv[1], timeout_s=5)
scope.acquire(1, 1, 0.01)
scope.unblank()   # e.g. live view between points
print("RUNNING", flush=True)
while True:
    scope.acquire(2, 2, 0.05)
    scope.unblank()
"""


@pytest.mark.slow
def test_deadman_blanks_after_the_client_is_killed(spawn, proxy: Proxy) -> None:
    deadman_s = 1.0
    with Subscriber(proxy.endpoints.backend, ["instrument.status"]) as sub:
        _, endpoint = spawn(
            "builtin:plasmonic",
            "--size",
            "16",
            "--speed",
            "1",
            "--deadman",
            str(deadman_s),
            "--bus",
            proxy.endpoints.frontend,
        )
        client = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_CLIENT), endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert read_ready_line(client) == "RUNNING"
            _wait_for(sub, lambda m: m.body.get("event") == "unblank", 10.0)
            client.kill()
            killed_at = time.monotonic()
            msg = _wait_for(sub, lambda m: m.body.get("event") == "deadman", deadman_s + 5.0)
            silent = time.monotonic() - killed_at
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(timeout=10)
            assert client.stdout is not None
            client.stdout.close()
        assert msg.body["blanked"] is True and msg.body["blanked_by"] == "deadman"
        assert silent <= deadman_s + 2.0, f"blanked {silent:.2f} s after the client died"


def read_ready_line(proc: subprocess.Popen) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


@pytest.mark.slow
def test_conformance_against_a_server_process(spawn, proxy: Proxy) -> None:
    _, endpoint = spawn(
        "builtin:4dstem", "--size", "12", "--speed", "0", "--bus", proxy.endpoints.frontend
    )
    with InstrumentClient(endpoint, timeout_s=10) as client:
        check_instrument(client)
        assert client.describe()["name"] == "sim:builtin:4dstem"


@pytest.mark.slow
def test_server_dies_mid_acquisition(spawn, proxy: Proxy) -> None:
    with Subscriber(proxy.endpoints.backend, ["instrument.status"]) as sub:
        proc, endpoint = spawn(
            "builtin:plasmonic",
            "--size",
            "12",
            "--speed",
            "0",
            "--faults",
            "die_after=2",
            "--bus",
            proxy.endpoints.frontend,
        )
        with InstrumentClient(endpoint, timeout_s=1.5, peer_timeout=0.5) as client:
            client.acquire(0, 0, 0.01)
            client.acquire(1, 0, 0.01)
            with pytest.raises(InstrumentError) as info:
                client.acquire(2, 0, 0.01)
            assert info.value.code == "timeout" and info.value.retryable
        assert proc.wait(timeout=10) == DIED_EXIT_STATUS
        msg = _wait_for(sub, lambda m: m.body.get("event") == "died", 5.0)
        assert msg.body["acquisitions"] == 2


@pytest.mark.slow
def test_bad_dataset_exits_with_usage_status() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dkl", "instrument", "sim", "builtin:nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown built-in dataset" in proc.stderr


@pytest.mark.slow
@pytest.mark.data
def test_sim_serves_a_real_spectrum_file_with_its_survey(spawn) -> None:
    folder = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scifireaders_SI_EELS"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (real third-party data, see shared/data/README.md)")
    _, endpoint = spawn(
        str(folder / "SI-EELS_Spectrum_Image.dm3"),
        "--survey",
        str(folder / "SI-HAADF.dm3"),
        "--speed",
        "0",
    )
    with InstrumentClient(endpoint, timeout_s=10) as client:
        desc = client.describe()
        assert desc["modality"] == "eels" and desc["shape"] == (49, 6)
        assert desc["signal_range"] == (350.0, 861.5)
        assert client.survey()["image"].shape == (49, 6)
        assert client.acquire(5, 40, desc["default_exposure"])["data"].shape == (1024,)


def test_run_sim_in_process_announces_ready_and_stops(proxy: Proxy) -> None:
    parser = argparse.ArgumentParser()
    add_sim_arguments(parser)
    args = parser.parse_args(
        [
            "builtin:core-loss",
            "--size",
            "10",
            "--speed",
            "0",
            "--deadman",
            "30",
            "--faults",
            "nan_at=1:2",
            "--bus",
            proxy.endpoints.frontend,
        ]
    )
    config = config_from_args(args)
    assert config.deadman_s == 30.0 and config.faults.nan_at == frozenset({(1, 2)})
    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(run_sim(config, ready.put, stop)))
    thread.start()
    try:
        line = ready.get(timeout=30)
        assert line.startswith("READY tcp://127.0.0.1:")
        with InstrumentClient(line.split()[1], timeout_s=5) as client:
            assert client.describe()["deadman_s"] == 30.0
            assert np.isnan(client.acquire(1, 2, 0.05)["data"]).all()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert status == [0]
