"""The dashboard server over real loopback HTTP/WebSocket, fed documents directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from dkl.viewer.dashboard import Dashboard, _Browser, serving
from dkl.viewer.testing import fake_run_documents

TIMEOUT = 10.0


def _run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), TIMEOUT))


async def _receive_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[list[dict]], bool]
) -> list[dict]:
    got: list[dict] = []
    while not done(got):
        got.append(json.loads(await ws.receive_str(timeout=TIMEOUT)))
    return got


def _topics(messages: list[dict]) -> list[str]:
    return [m["topic"] if m["type"] == "doc" else m["type"] for m in messages]


def test_page_and_script_are_served() -> None:
    async def main() -> None:
        async with serving(Dashboard()) as url, aiohttp.ClientSession() as http:
            assert url.startswith("http://127.0.0.1:")
            page = await (await http.get(url)).text()
            assert '<canvas id="survey"' in page and 'src="app.js"' in page
            script = await http.get(url + "app.js")
            assert script.status == 200 and "new WebSocket" in await script.text()

    _run(main)


def test_late_browser_gets_full_state_then_live_documents_and_so_do_others() -> None:
    docs = list(fake_run_documents(n=6, shape=(8, 10)))
    split = 1 + 3 * 3  # start + three steps (event, model, maps)
    dashboard = Dashboard()
    for doc in docs[:split]:
        dashboard.publish(doc)

    async def main() -> None:
        async with serving(dashboard) as url, aiohttp.ClientSession() as http:
            ws1 = await http.ws_connect(url + "ws")
            first = await _receive_until(ws1, lambda m: len(m) == 1 + 1 + 3 + 3 + 1)
            assert _topics(first) == [
                "reset",
                "run.start",
                *["run.event"] * 3,
                *["run.model"] * 3,
                "run.maps",
            ]
            maps = first[-1]["body"]
            assert maps["version"] == 3  # only the latest maps: conflated
            assert maps["acquisition"]["shape"] == [8, 10] and "__array__" in maps["acquisition"]
            ws2 = await http.ws_connect(url + "ws")
            await _receive_until(ws2, lambda m: len(m) == len(first))
            for doc in docs[split:]:
                dashboard.publish(doc)
            rest = len(docs) - split
            for ws in (ws1, ws2):
                live = await _receive_until(ws, lambda m: len(m) == rest)
                assert [m["seq"] for m in live] == [d.seq for d in docs[split:]]
            state = await (await http.get(url + "api/state")).json()
            assert state == {
                "run_id": "run-test",
                "state": "success",
                "num_events": 6,
                "max_measurements": 6,
                "maps_version": 6,
                "browsers": 2,
            }
            await ws1.close()
            await ws2.close()

    _run(main)


def test_slow_browser_is_reset_to_the_full_state_instead_of_queueing_forever() -> None:
    dashboard = Dashboard(queue_limit=5)
    slow = _Browser(socket=None)  # type: ignore[arg-type]  # nothing is ever sent from it
    dashboard.browsers.add(slow)
    docs = list(fake_run_documents(n=8, shape=(4, 4)))
    for doc in docs:
        dashboard.publish(doc)
    assert dashboard.resyncs >= 1
    assert len(slow.outbox) <= 5 + len(Dashboard.full_state_messages(dashboard.runs.current))
    # whatever is queued, replayed in a page, ends in the complete run
    messages = [json.loads(m) for m in slow.outbox]
    last_reset = max(i for i, m in enumerate(messages) if m["type"] == "reset")
    replay = messages[last_reset + 1 :]
    events = {m["body"]["index"] for m in replay if m.get("topic") == "run.event"}
    assert events == set(range(8)) and replay[-1]["topic"] == "run.stop"


def test_a_new_run_resets_every_browser() -> None:
    dashboard = Dashboard()
    browser = _Browser(socket=None)  # type: ignore[arg-type]
    dashboard.browsers.add(browser)
    for doc in fake_run_documents(n=2, run_id="first"):
        dashboard.publish(doc)
    browser.outbox.clear()
    second = fake_run_documents(n=2, run_id="second")
    dashboard.publish(next(second))
    messages = [json.loads(m) for m in browser.outbox]
    assert messages[0] == {"type": "reset", "run_id": "second"}
    assert [m.get("topic") for m in messages[1:]] == ["run.start"]


@pytest.mark.parametrize(
    ("control", "action", "status", "expect"),
    [
        ("record", "pause", 200, {"ok": True, "reply": {"state": "paused"}}),
        ("refuse", "pause", 502, {"ok": False, "error": "forbidden: role viewer may not pause"}),
        ("record", "explode", 400, {"ok": False}),
        (None, "stop", 503, {"ok": False}),
    ],
)
def test_control_forwards_allowed_actions_and_shows_refusals(
    control: str | None, action: str, status: int, expect: dict
) -> None:
    sent: list[tuple[str, str | None]] = []

    async def record(act: str, run_id: str | None) -> dict:
        sent.append((act, run_id))
        return {"state": "paused"}

    async def refuse(act: str, run_id: str | None) -> dict:
        raise PermissionError("forbidden: role viewer may not pause")

    dashboard = Dashboard(control={"record": record, "refuse": refuse}.get(control or ""))
    dashboard.publish(next(fake_run_documents(n=2)))

    async def main() -> None:
        async with serving(dashboard) as url, aiohttp.ClientSession() as http:
            response = await http.post(url + "api/control", json={"action": action})
            assert response.status == status
            reply = await response.json()
            assert {k: reply[k] for k in expect} == expect

    _run(main)
    assert sent == ([(action, "run-test")] if control == "record" and status == 200 else [])
