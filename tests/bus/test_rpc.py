"""Request/reply: results with arrays, structured errors, deadlines, retries, heartbeats."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from dkl.bus import (
    BAD_ARGUMENTS,
    INTERNAL,
    UNKNOWN_METHOD,
    AsyncRpcClient,
    BusTimeout,
    RemoteError,
    RpcClient,
    run_server,
    serve,
)
from dkl.bus.testing import LossyRelay


class Refused(Exception):
    code, message, retryable = "not_ready", "the stage is moving", True


class Device:
    def __init__(self) -> None:
        self.count = 0
        self.gate = threading.Event()

    def scale(self, arr: np.ndarray, factor: float = 2.0) -> dict:
        return {"out": arr * factor, "shape": arr.shape}

    def incr(self) -> int:
        self.count += 1
        return self.count

    def wait(self) -> str:
        self.gate.wait(5)
        return "released"

    def refuse(self) -> None:
        raise Refused()

    def crash(self) -> None:
        raise ZeroDivisionError("oops")


METHODS = ["scale", "incr", "wait", "refuse", "crash"]


@pytest.fixture
def device_server():
    device = Device()
    server = serve(device, METHODS)
    try:
        yield device, server
    finally:
        device.gate.set()
        server.stop()


def test_arrays_both_ways(device_server) -> None:
    _, server = device_server
    with RpcClient(server.endpoint) as client:
        arr = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
        out = client.call("scale", arr, factor=3.0)
        np.testing.assert_array_equal(out["out"], arr * 3)
        assert out["shape"] == [2, 3]


@pytest.mark.parametrize(
    ("call", "code", "retryable"),
    [
        (("nope",), UNKNOWN_METHOD, False),
        (("incr", 1, 2), BAD_ARGUMENTS, False),
        (("refuse",), "not_ready", True),
        (("crash",), INTERNAL, False),
    ],
)
def test_structured_errors(device_server, call, code, retryable) -> None:
    _, server = device_server
    with RpcClient(server.endpoint) as client:
        with pytest.raises(RemoteError) as info:
            client.call(*call)
        assert (info.value.code, info.value.retryable) == (code, retryable)
        assert client.call("incr") == 1  # the server survived


def test_deadline_raises_bus_timeout(device_server) -> None:
    device, server = device_server
    with RpcClient(server.endpoint) as client:
        with pytest.raises(BusTimeout):
            client.call("wait", timeout=0.3)
        device.gate.set()
        assert client.call("incr", timeout=5) == 1


def test_same_key_runs_once(device_server) -> None:
    device, server = device_server
    with RpcClient(server.endpoint) as client:
        assert client.call("incr", key="k1") == 1
        assert client.call("incr", key="k1") == 1  # a retry: answered from the cache
        assert client.call("incr") == 2
    assert device.count == 2 and server.stats["cached"] == 1


def test_lost_reply_is_retried_once_under_the_idempotency_key(device_server) -> None:
    device, server = device_server
    with (
        LossyRelay(server.endpoint, drop_replies=1) as relay,
        RpcClient(relay.endpoint, retry_interval=0.1, timeout=5) as client,
    ):
        assert client.call("incr") == 1
        assert relay.dropped == 1 and client.stats["resends"] >= 1
    assert device.count == 1 and server.stats["cached"] >= 1


def test_server_notices_a_silent_client() -> None:
    lost: list[str] = []
    noticed = threading.Event()

    def on_lost(client_id: str) -> None:
        lost.append(client_id)
        noticed.set()

    server = serve(Device(), METHODS, peer_timeout=0.3, on_peer_lost=on_lost)
    try:
        client = RpcClient(server.endpoint)
        client.ping()
        client.close()  # goes silent
        assert noticed.wait(2.0)
        assert lost == [client.client_id]
    finally:
        server.stop()


def test_client_notices_a_dead_server_and_reconnects(device_server) -> None:
    _, server = device_server
    client = RpcClient(server.endpoint, heartbeat_s=0.05, peer_timeout=0.2)
    assert client.ping() < 1.0 and client.peer_alive
    server.stop()
    with pytest.raises(BusTimeout):
        client.call("incr", timeout=1.0)
    assert client.stats["reconnects"] >= 2 and not client.peer_alive
    client.close()


def test_run_server_exits_when_asked() -> None:
    stop = threading.Event()
    lines: list[str] = []
    thread = threading.Thread(
        target=run_server,
        args=(Device(), ["incr"], "tcp://127.0.0.1:0"),
        kwargs={"announce": lines.append, "stop": stop},
    )
    thread.start()
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive() and "incr" in lines[0]


def test_async_client(device_server) -> None:
    _, server = device_server

    async def main() -> tuple:
        client = AsyncRpcClient(server.endpoint)
        try:
            first = await client.call("incr")
            with pytest.raises(RemoteError):
                await client.call("crash")
            await client.ping()
            return first, await client.call("incr")
        finally:
            client.close()

    assert asyncio.run(main()) == (1, 2)


def test_inline_server_same_contract() -> None:
    device = Device()
    server = serve(device, METHODS, threaded=False)
    try:
        with RpcClient(server.endpoint) as client:
            assert client.call("incr", key="k") == 1
            assert client.call("incr", key="k") == 1
            with pytest.raises(RemoteError) as info:
                client.call("refuse")
            assert info.value.code == "not_ready"
    finally:
        server.stop()
    assert device.count == 1
