"""CURVE keys, ZAP-authenticated roles, and the loopback-only default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import zmq

from dkl.bus import (
    AGENT_CONTROL_ROLES,
    FORBIDDEN,
    BusTimeout,
    ClientSecurity,
    Proxy,
    Publisher,
    RemoteError,
    RpcClient,
    SecurityError,
    ServerSecurity,
    Subscriber,
    create_keys,
    is_loopback,
    load_keypair,
    serve,
)
from dkl.bus._security import check_bind


class Control:
    def status(self) -> str:
        return "running"

    def pause(self) -> str:
        return "paused"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("keys")
    authorized = root / "authorized"
    authorized.mkdir()
    out: dict = {"authorized": authorized}
    for name, role, trusted in [
        ("agent", "agent", True),
        ("op", "operator", True),
        ("viewer", "viewer", True),
        ("intruder", "operator", False),
    ]:
        public, secret = create_keys(root / "own", name, role)
        if trusted:
            shutil.copy(public, authorized / public.name)
        out[name] = load_keypair(secret)
    return out


def _client_sec(keys: dict, who: str) -> ClientSecurity:
    return ClientSecurity(keys[who], keys["agent"].public)


@pytest.fixture(scope="module")
def control(keys: dict):
    server = serve(
        Control(),
        ["status", "pause"],
        roles=AGENT_CONTROL_ROLES,
        security=ServerSecurity(keys["agent"], keys["authorized"]),
    )
    try:
        yield server
    finally:
        server.stop()


def test_create_keys_refuses_overwrite_and_bad_role(tmp_path: Path) -> None:
    public, secret = create_keys(tmp_path, "x", "viewer")
    assert 'role = "viewer"' in public.read_text() and secret.stat().st_mode & 0o077 == 0
    with pytest.raises(FileExistsError):
        create_keys(tmp_path, "x", "viewer")
    with pytest.raises(ValueError, match="role"):
        create_keys(tmp_path, "y", "admin")


def test_roles_come_from_the_key(keys: dict, control) -> None:
    with RpcClient(control.endpoint, security=_client_sec(keys, "viewer"), timeout=3) as viewer:
        assert viewer.call("status") == "running"
        with pytest.raises(RemoteError) as info:
            viewer.call("pause")
        assert info.value.code == FORBIDDEN and not info.value.retryable
    with RpcClient(control.endpoint, security=_client_sec(keys, "op"), timeout=3) as operator:
        assert operator.call("pause") == "paused"


def test_unauthorised_key_is_refused(keys: dict, control) -> None:
    refused_before = control._auth.refused
    with (
        RpcClient(
            control.endpoint, security=_client_sec(keys, "intruder"), peer_timeout=0.2
        ) as intruder,
        pytest.raises(BusTimeout),
    ):
        intruder.call("status", timeout=0.6)
    with RpcClient(control.endpoint, peer_timeout=0.2) as plain, pytest.raises(BusTimeout):
        plain.call("status", timeout=0.4)  # no CURVE at all
    assert control._auth.refused > refused_before


def test_proxy_with_curve_viewer_may_only_subscribe(keys: dict) -> None:
    sec = ServerSecurity(keys["agent"], keys["authorized"])
    ctx = zmq.Context()
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", security=sec) as proxy:
        try:
            sub = Subscriber(
                proxy.endpoints.backend, ["run."], ctx=ctx, security=_client_sec(keys, "viewer")
            )
            pub = Publisher(
                proxy.endpoints.frontend, "agent", ctx=ctx, security=_client_sec(keys, "agent")
            )
            pub.publish("run.start", {"run_id": "r"})
            got = sub.recv(timeout=3)
            assert got is not None and got.body == {"run_id": "r"}
            with pytest.raises(BusTimeout):
                Publisher(
                    proxy.endpoints.frontend,
                    "fake",
                    ctx=ctx,
                    wait=0.5,
                    security=_client_sec(keys, "viewer"),
                )
        finally:
            ctx.destroy(linger=0)


def test_loopback_only_by_default() -> None:
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0") as proxy:
        assert all(is_loopback(e) for e in (proxy.endpoints.frontend, proxy.endpoints.backend))
    assert Proxy().__dict__["_want"] == ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556")
    for endpoint in ("tcp://0.0.0.0:0", "tcp://*:0", "tcp://eth0:0", "tcp://192.168.1.5:0"):
        assert not is_loopback(endpoint)
        with pytest.raises(SecurityError, match="insecure"):
            check_bind(endpoint, None, insecure=False)
        check_bind(endpoint, None, insecure=True)  # explicit opt-out is allowed
    with pytest.raises(SecurityError):
        Proxy("tcp://0.0.0.0:0", "tcp://127.0.0.1:0").start()
    with pytest.raises(SecurityError):
        serve(Control(), ["status"], "tcp://0.0.0.0:0")
