"""The agent's control socket in-process: roles, refusals, and a bad plan."""

from __future__ import annotations

import pytest

from dkl.agent.daemon import AgentConfig, serve_agent
from dkl.bus import BusTimeout, RemoteError, RpcClient, create_keys, init_keys
from dkl.security import client_security, server_security


@pytest.fixture
def secured(tmp_path):
    keys = tmp_path / "keys"
    init_keys(keys, "agent", "agent")
    init_keys(keys, "alice", "operator")
    init_keys(keys, "screen", "viewer")
    create_keys(tmp_path / "elsewhere", "mallory", "operator")  # never trusted here
    config = AgentConfig(runs=tmp_path / "runs", security=server_security(str(keys), "agent"))
    _agent, server = serve_agent(config)
    yield server.endpoint, keys, tmp_path
    server.stop()


def client(endpoint, keys, name):
    return RpcClient(endpoint, timeout=5.0,
                     security=client_security(str(keys), name, str(keys / "agent.key")))


def test_a_viewer_may_read_but_not_steer(secured):
    endpoint, keys, _ = secured
    with client(endpoint, keys, "screen") as viewer:
        assert viewer.call("status")["state"] == "idle"
        with pytest.raises(RemoteError) as err:
            viewer.call("pause")
        assert err.value.code == "forbidden"
        with pytest.raises(RemoteError) as err:
            viewer.call("submit", source="scalarize peak(1)")
        assert err.value.code == "forbidden"


def test_an_operator_is_told_why_a_request_cannot_be_done(secured):
    endpoint, keys, _ = secured
    with client(endpoint, keys, "alice") as operator:
        with pytest.raises(RemoteError) as err:
            operator.call("pause")
        assert err.value.code == "no_run"
        with pytest.raises(RemoteError) as err:
            operator.call("submit", source="scalarize peek(1)\n", path="x.dkl")
        assert err.value.code == "bad_plan"
        assert "x.dkl:1:11: error[E110]: unknown function `peek`" in err.value.message


def test_an_unknown_key_is_refused(secured):
    endpoint, keys, tmp_path = secured
    elsewhere = tmp_path / "elsewhere"
    stranger = RpcClient(endpoint, timeout=1.0, peer_timeout=0.5, security=client_security(
        str(elsewhere), "mallory", str(keys / "agent.key")))
    with stranger, pytest.raises(BusTimeout) as err:
        stranger.call("status")
    assert "forbidden" not in str(err.value)  # never answered at all: the handshake failed
