"""Entry points of `dkl watch` and `dkl view`: the bus feeding the watcher or the dashboard.

Each is one coroutine that wires `busio.follow` (snapshot, then live) to a renderer; the
CLI modules only parse arguments and `asyncio.run` these.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TextIO

from dkl.viewer.busio import FollowConfig, control_client, follow
from dkl.viewer.dashboard import Dashboard, serving
from dkl.viewer.state import Document
from dkl.viewer.watch import WatchOutput, watch_documents


async def until_run_stops(docs: AsyncIterable[Document], count: int = 1) -> AsyncIterator[Document]:
    """Pass documents through and end after the `count`-th `run.stop`."""
    stops = 0
    async for doc in docs:
        yield doc
        if doc.topic == "run.stop":
            stops += 1
            if stops >= count:
                return


async def run_watch(config: FollowConfig, out: WatchOutput, exit_after_run: bool = False) -> int:
    """Follow the bus and print runs until interrupted (or until a run stops)."""
    from dkl.bus import BusError

    docs: AsyncIterable[Document] = follow(config)
    if exit_after_run:
        docs = until_run_stops(docs)
    try:
        await watch_documents(docs, out)
    except BusError as err:
        print(f"dkl watch: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    return 0


async def run_view(
    config: FollowConfig,
    control: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    announce: Callable[[str], None] | None = None,
    err: TextIO | None = None,
) -> int:
    """Serve the dashboard on `host:port` and feed it from the bus until interrupted."""
    from dkl.bus import BusError

    err = err or sys.stderr
    async with contextlib.AsyncExitStack() as stack:
        control_fn = await stack.enter_async_context(control_client(control)) if control else None
        dashboard = Dashboard(control=control_fn)
        try:
            url = await stack.enter_async_context(serving(dashboard, host, port))
        except OSError as error:
            print(f"dkl view: cannot serve on {host}:{port}: {error}", file=err)
            return 2
        (announce or print)(f"dkl view: dashboard at {url}")
        try:
            await dashboard.consume(follow(config))
        except BusError as error:
            print(f"dkl view: {error}", file=err)
            return 1
    return 0
