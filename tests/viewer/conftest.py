"""Fixtures: headless Chromium over the Chrome DevTools Protocol (aiohttp WebSocket client).

Enough for the dashboard test: open a page, evaluate JavaScript (waiting on promises),
take a screenshot. Chromium prints its DevTools address on stderr when ready, which is
the readiness handshake; the process is always killed on exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dkl.viewer.testing import FakeAgent, fake_agent, fake_control

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    "--window-size=1400,1300",
]


def chromium_path() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


class Page:
    """One page target over its DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        await self.ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.receive_str(timeout=timeout))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def navigate(self, url: str, timeout: float = 15.0) -> None:
        """Load `url` and wait for its load event (scripts have run)."""
        await self.send("Page.enable")
        ident = next(self._ids)
        await self.ws.send_str(
            json.dumps({"id": ident, "method": "Page.navigate", "params": {"url": url}})
        )
        replied = loaded = False
        while not (replied and loaded):
            message = json.loads(await self.ws.receive_str(timeout=timeout))
            if message.get("id") == ident:
                if "error" in message or message["result"].get("errorText"):
                    raise RuntimeError(f"navigate {url}: {message}")
                replied = True
            loaded = loaded or (replied and message.get("method") == "Page.loadEventFired")

    async def evaluate(self, expression: str, timeout: float = 15.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited)."""
        result = await self.send(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, timeout: float = 15.0) -> None:
        """Wait until the JavaScript `condition` holds in the page (checked every 20 ms)."""
        limit_ms, label = int(timeout * 1000), json.dumps(condition)
        script = f"""new Promise((resolve, reject) => {{
            const t0 = Date.now();
            const check = () => {{
              let ok = false; try {{ ok = !!({condition}); }} catch (e) {{}}
              if (ok) resolve(true);
              else if (Date.now() - t0 > {limit_ms}) reject(new Error("timeout: " + {label}));
              else setTimeout(check, 20);
            }};
            check();
        }})"""
        await self.evaluate(script, timeout=timeout + 5)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def open_page(url: str, timeout: float = 30.0) -> AsyncIterator[Page]:
    """Start headless Chromium on `url` with a fresh profile; yields the page."""
    exe = chromium_path()
    assert exe is not None
    with tempfile.TemporaryDirectory(prefix="dkl-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain: asyncio.Task[None] | None = None
        try:
            port = await asyncio.wait_for(_devtools_port(proc), timeout)
            drain = asyncio.create_task(_drain(proc))  # a full stderr pipe would block it
            async with aiohttp.ClientSession() as http:
                targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                target = next(t for t in targets if t.get("type") == "page")
                async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.navigate(url)
                    yield page
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.read(65536):
        pass


async def _devtools_port(proc: asyncio.subprocess.Process) -> int:
    assert proc.stderr is not None
    seen = []
    while True:
        line = (await proc.stderr.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError("chromium exited before DevTools was ready:\n" + "".join(seen))
        seen.append(line)
        match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if match:
            return int(match.group(1))


@pytest.fixture
def chromium_page() -> Callable[..., contextlib.AbstractAsyncContextManager[Page]]:
    """`open_page(url)`; skips the test when Chromium is not installed."""
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver)")
    return open_page


# --- a fake agent on the real bus -----------------------------------------------------


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[FakeAgent]:
    """A journaled publisher `agent` behind a real proxy, with its snapshot service."""
    with fake_agent(tmp_path / "journal.log") as running:
        yield running


@pytest.fixture
def control_address(agent: FakeAgent) -> Iterator[str]:
    """A control endpoint (bus RPC) recording commands into `agent.commands`."""
    with fake_control(agent.commands) as address:
        yield address


@pytest.fixture
def operator_only_control(agent: FakeAgent) -> Iterator[str]:
    """A control endpoint refusing us as the agent refuses a caller who is not an operator."""
    with fake_control(agent.commands, refuse=True) as address:
        yield address
