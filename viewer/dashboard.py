"""`dkl view`: a live web dashboard of the current run, served on loopback by aiohttp.

The server folds every run document into `Runs` (the same state the terminal watcher
keeps), so a browser that connects late is sent the whole current run, then every new
document as it arrives, over a WebSocket. Each browser has its own bounded queue: one
that cannot keep up is reset and re-sent the current state instead of slowing the others
(or the run, which never waits on viewers at all).

Pause / resume / stop go from the page to `POST /api/control`, and from there to the
agent's control address through `control` (a bus RPC client in `dkl view`); the agent
decides whether the caller is allowed and its refusal is shown in the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from dkl.viewer.state import Document, Runs, RunState
from dkl.viewer.wire import doc_message, reset_message, state_documents

#: Actions the page may ask for; anything else is refused before reaching the agent.
CONTROL_ACTIONS = ("pause", "resume", "stop")
CONTROL_TIMEOUT_S = 5.0

#: `control(action, run_id)` sends one command to the agent and returns its reply; it
#: raises an exception whose text is shown to the operator when the agent refuses.
ControlFn = Callable[[str, "str | None"], Awaitable[Any]]


@dataclass(eq=False)
class _Browser:
    """One connected page: its socket and what is still to be sent to it."""

    socket: web.WebSocketResponse
    outbox: deque[str] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, messages: list[str]) -> None:
        self.outbox.extend(messages)
        self.ready.set()


class Dashboard:
    """The dashboard's state and its browsers; feed it documents with `publish`."""

    def __init__(self, control: ControlFn | None = None, queue_limit: int = 512) -> None:
        self.runs = Runs()
        self.control = control
        self.queue_limit = queue_limit
        self.browsers: set[_Browser] = set()
        self.resyncs = 0  #: how often a slow browser was reset instead of queued further

    # --- documents in ---------------------------------------------------------------

    def publish(self, doc: Document) -> bool:
        """Fold one document into the state and push it to every browser."""
        previous = self.runs.current
        run = self.runs.apply(doc)
        if run is None:
            return False
        if run is not self.runs.current:
            return True  # a document of an older run: kept, not shown
        if previous is not None and run is not previous:
            for browser in list(self.browsers):
                self._resync(browser)  # a new run: every page starts over
            return True
        message = doc_message(doc)
        for browser in list(self.browsers):
            if len(browser.outbox) >= self.queue_limit:
                self._resync(browser)
            else:
                browser.send([message])
        return True

    async def consume(self, docs: AsyncIterable[Document]) -> None:
        """Publish every document of `docs` until it ends."""
        async for doc in docs:
            self.publish(doc)

    # --- browsers out -----------------------------------------------------------------

    def _resync(self, browser: _Browser) -> None:
        """Replace whatever the browser still had queued by the full current state."""
        browser.outbox.clear()
        self.resyncs += 1
        browser.send(self.full_state_messages(self.runs.current))

    @staticmethod
    def full_state_messages(run: RunState | None) -> list[str]:
        if run is None:
            return [reset_message(None)]
        return [reset_message(run)] + [doc_message(d) for d in state_documents(run)]

    @staticmethod
    async def _send_loop(browser: _Browser) -> None:
        while not browser.socket.closed:
            await browser.ready.wait()
            browser.ready.clear()
            while browser.outbox:
                await browser.socket.send_str(browser.outbox.popleft())

    async def handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=20.0)
        await socket.prepare(request)
        browser = _Browser(socket)
        browser.send(self.full_state_messages(self.runs.current))
        self.browsers.add(browser)
        sender = asyncio.create_task(self._send_loop(browser))
        try:
            async for msg in socket:  # the page sends nothing we act on; read until close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.browsers.discard(browser)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await sender
        return socket

    # --- control and pages --------------------------------------------------------------

    async def handle_control(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            action = str(data.get("action", ""))
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "expected JSON {action}"}, status=400)
        if action not in CONTROL_ACTIONS:
            return web.json_response(
                {
                    "ok": False,
                    "error": f"unknown action {action!r}; use {', '.join(CONTROL_ACTIONS)}",
                },
                status=400,
            )
        if self.control is None:
            return web.json_response(
                {"ok": False, "error": "no control address: start dkl view with --control ADDR"},
                status=503,
            )
        run = self.runs.current
        try:
            reply = await asyncio.wait_for(
                self.control(action, None if run is None else run.run_id), CONTROL_TIMEOUT_S
            )
        except (TimeoutError, asyncio.TimeoutError):  # distinct types before 3.11
            return web.json_response(
                {"ok": False, "error": f"the agent did not answer within {CONTROL_TIMEOUT_S:g} s"},
                status=504,
            )
        except Exception as err:  # the agent's refusal (e.g. not an operator) shown verbatim
            return web.json_response(
                {"ok": False, "error": str(err) or type(err).__name__}, status=502
            )
        return web.json_response({"ok": True, "reply": _json_safe(reply)})

    async def handle_state(self, request: web.Request) -> web.Response:
        """A small JSON summary of the current run, for scripts and health checks."""
        run = self.runs.current
        if run is None:
            return web.json_response({"run_id": None, "browsers": len(self.browsers)})
        return web.json_response(
            {
                "run_id": run.run_id,
                "state": run.state,
                "num_events": run.num_events,
                "max_measurements": run.max_measurements,
                "maps_version": None if run.maps is None else _json_safe(run.maps.get("version")),
                "browsers": len(self.browsers),
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", _static_handler("index.html", "text/html"))
        app.router.add_get("/app.js", _static_handler("app.js", "text/javascript"))
        app.router.add_get("/ws", self.handle_socket)
        app.router.add_post("/api/control", self.handle_control)
        app.router.add_get("/api/state", self.handle_state)
        return app


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _static_handler(
    name: str, content_type: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    text = resources.files("dkl.viewer").joinpath("static", name).read_text(encoding="utf-8")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text=text, content_type=content_type, headers={"Cache-Control": "no-store"}
        )

    return handler


@contextlib.asynccontextmanager
async def serving(
    dashboard: Dashboard, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `dashboard` while inside the block; yields its URL (port 0 picks a free one)."""
    runner = web.AppRunner(dashboard.app(), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        yield f"http://{bound[0]}:{bound[1]}/"
    finally:
        for browser in list(dashboard.browsers):
            await browser.socket.close()
        await runner.cleanup()
