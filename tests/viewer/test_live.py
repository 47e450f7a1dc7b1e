"""Viewers on the real bus: proxy, journaled publisher with a snapshot service, subscribers.

A fake agent publishes the synthetic run through `dkl.bus` exactly as the agent will
(journal first, then publish; history served as "since seq N").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from dkl import cmd_view, cmd_watch
from dkl.bus import read_log
from dkl.viewer.busio import FollowConfig, control_client, follow
from dkl.viewer.dashboard import Dashboard, serving
from dkl.viewer.live import run_view, run_watch
from dkl.viewer.state import Document
from dkl.viewer.testing import FakeAgent, fake_run_documents
from dkl.viewer.watch import WatchOutput

TIMEOUT = 30.0


class _Lines(io.StringIO):
    """Output that sets `reached` once `n` lines have been written (a readiness signal)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.reached = n, asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self.n:
            self.reached.set()
        return written


async def _signal_stop(docs: AsyncIterator[Document], stopped: asyncio.Event):  # type: ignore[no-untyped-def]
    """Pass documents through; set `stopped` once a `run.stop` went by."""
    async for doc in docs:
        yield doc
        if doc.topic == "run.stop":
            stopped.set()


def test_watch_json_started_mid_run_prints_the_complete_run(agent: FakeAgent) -> None:
    docs = list(fake_run_documents(n=12, shape=(16, 20)))
    half = len(docs) // 2
    agent.publish(docs[:half])  # the run is under way before the watcher starts
    out = _Lines(half)

    async def main() -> None:
        task = asyncio.create_task(
            run_watch(agent.follow, WatchOutput(out, json=True), exit_after_run=True)
        )
        await asyncio.wait_for(out.reached.wait(), TIMEOUT)
        agent.publish(docs[half:])  # ... and goes on while it watches
        assert await asyncio.wait_for(task, TIMEOUT) == 0

    asyncio.run(main())
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    journal = read_log(agent.journal)
    assert [(r["topic"], r["seq"]) for r in printed] == [(m.topic, m.seq) for m in journal]
    for record, message in zip(printed, journal, strict=True):
        if message.topic == "run.event":
            assert record["body"]["x"] == message.body["x"]
            assert record["body"]["scalar"] == message.body["scalar"]


def test_a_stalled_viewer_never_blocks_the_run_and_catches_up(agent: FakeAgent) -> None:
    docs = list(fake_run_documents(n=60, shape=(64, 64)))
    config = FollowConfig(
        bus=agent.follow.bus, snapshot=agent.follow.snapshot, source="agent", maxlen=16
    )

    async def main() -> list[Document]:
        stream = follow(config)
        agent.publish(docs[:1])
        first = await asyncio.wait_for(anext(stream), TIMEOUT)
        # the viewer now reads nothing while the whole run is published
        agent.publish(docs[1:])
        assert agent.publisher.dropped == 0
        rest = []
        while len(rest) < len(docs) - 1:
            rest.append(await asyncio.wait_for(anext(stream), TIMEOUT))
        await stream.aclose()
        return [first, *rest]

    got = asyncio.run(main())
    assert [(d.topic, d.seq) for d in got] == [(m.topic, m.seq) for m in read_log(agent.journal)]


def test_dashboard_fed_from_the_bus_serves_a_late_browser_the_whole_run(agent: FakeAgent) -> None:
    docs = list(fake_run_documents(n=5, shape=(8, 8)))
    agent.publish(docs[:7])

    async def main() -> None:
        dashboard, stopped = Dashboard(), asyncio.Event()
        feeder = asyncio.create_task(dashboard.consume(_signal_stop(follow(agent.follow), stopped)))
        async with serving(dashboard) as url, aiohttp.ClientSession() as http:
            agent.publish(docs[7:])
            await asyncio.wait_for(stopped.wait(), TIMEOUT)
            ws = await http.ws_connect(url + "ws")
            got = []
            while not got or got[-1].get("topic") != "run.stop":
                got.append(json.loads(await ws.receive_str(timeout=TIMEOUT)))
            events = [m["body"]["index"] for m in got if m.get("topic") == "run.event"]
            assert events == list(range(5))
            await ws.close()
        feeder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await feeder

    asyncio.run(main())


@pytest.mark.parametrize("refused", [False, True])
def test_dashboard_control_goes_to_the_agent_over_bus_rpc(
    agent: FakeAgent, request: pytest.FixtureRequest, refused: bool
) -> None:
    address = request.getfixturevalue("operator_only_control" if refused else "control_address")

    async def main() -> dict:
        async with control_client(address) as control:
            dashboard = Dashboard(control=control)
            dashboard.publish(next(fake_run_documents(n=2)))
            async with serving(dashboard) as url, aiohttp.ClientSession() as http:
                response = await http.post(url + "api/control", json={"action": "pause"})
                return await response.json()

    reply = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    if refused:
        assert reply["ok"] is False and reply["error"].startswith("[forbidden]")
        assert agent.commands == []
    else:
        assert reply == {"ok": True, "reply": {"state": "paused"}}
        assert agent.commands == ["pause"]


def test_run_view_serves_the_dashboard_fed_from_the_bus(agent: FakeAgent) -> None:
    agent.publish(list(fake_run_documents(n=3, shape=(8, 8))))

    async def main() -> dict:
        announced: asyncio.Queue[str] = asyncio.Queue()
        view = asyncio.create_task(
            run_view(agent.follow, port=0, announce=lambda text: announced.put_nowait(text))
        )
        text = await asyncio.wait_for(announced.get(), TIMEOUT)
        url = text.rsplit(" ", 1)[-1]
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url + "ws")  # its full state ends with the stop
            while json.loads(await ws.receive_str(timeout=TIMEOUT)).get("topic") != "run.stop":
                pass
            state = await (await http.get(url + "api/state")).json()
            await ws.close()
        view.cancel()
        with pytest.raises(asyncio.CancelledError):
            await view
        return state

    state = asyncio.run(main())
    assert state["state"] == "success" and state["num_events"] == 3


def test_watch_without_a_bus_fails_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    config = FollowConfig(bus="tcp://127.0.0.1:9", ready_timeout=0.3)
    assert asyncio.run(run_watch(config, WatchOutput(io.StringIO()))) == 1
    assert "dkl watch: no readiness reply from the bus proxy" in capsys.readouterr().err


def test_dkl_watch_command_prints_the_run_as_json_lines(
    agent: FakeAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    agent.publish(list(fake_run_documents(n=4, shape=(8, 8))))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cmd_watch.register(sub)
    cmd_view.register(sub)
    view_args = parser.parse_args(["view", "--control", "tcp://127.0.0.1:7", "--port", "0"])
    assert (view_args.control, view_args.snapshot, view_args.port) == ("tcp://127.0.0.1:7", None, 0)
    args = parser.parse_args(
        [
            "watch",
            "--bus",
            agent.follow.bus,
            "--snapshot",
            agent.follow.snapshot or "",
            "--json",
            "--exit-after-run",
        ]
    )
    assert args.func(args) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in printed] == [m.seq for m in read_log(agent.journal)]
