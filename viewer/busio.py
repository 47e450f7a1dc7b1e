"""The viewers' only door to `dkl.bus`: bus messages in, `Document`s out.

Keeping every `dkl.bus` call here means the watcher, the dashboard and the report see one
plain record (`Document`) and can be tested without sockets.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dkl.viewer.state import Document


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def to_document(message: Any) -> Document:
    """Turn a bus message (topic, header with seq, body) into a `Document`."""
    topic = _field(message, "topic", "")
    if isinstance(topic, bytes):
        topic = topic.decode("utf-8", "replace")
    seq = _field(message, "seq")
    if seq is None:  # a message given as a plain map with a header map
        seq = _field(_field(message, "header"), "seq")
    body = _field(message, "body") or {}
    wall = _field(message, "time") or None
    return Document(
        topic=str(topic),
        body=dict(body),
        seq=None if seq is None else int(seq),
        time=None if wall is None else float(wall),
    )


def read_journal(path: Path) -> Iterator[Document]:
    """Every document of a run journal (`RUN_DIR/journal.log`), in publish order."""
    from dkl.bus import read_log

    for message in read_log(Path(path)):
        yield to_document(message)


#: Where `dkl bus` serves subscribers by default (the proxy's backend).
DEFAULT_BUS = "tcp://127.0.0.1:5556"
#: The `reason` the agent records (in `run.interruption`) for a dashboard command.
REASON = "from the dkl view dashboard"
#: The agent's publisher id: the stream whose history the snapshot service serves.
DEFAULT_SOURCE = "agent"


def _warn(text: str) -> None:
    print(f"dkl: {text}", file=sys.stderr)


@dataclass(frozen=True)
class FollowConfig:
    """How a viewer joins the bus: where to subscribe and where to fetch history."""

    bus: str = DEFAULT_BUS
    snapshot: str | None = None  #: the agent's snapshot (or control) address; None: live only
    source: str = DEFAULT_SOURCE
    ready_timeout: float = 5.0
    maxlen: int = 2_000  #: queued messages before the viewer stops reading (then refills)


async def follow(
    config: FollowConfig, warn: Callable[[str], None] = _warn
) -> AsyncIterator[Document]:
    """Every run document, from the start of the run in progress, then live, forever.

    Subscribes first (readiness round trip through the proxy), then fetches the source's
    history "since seq 0" from the snapshot service, then yields live messages: the
    subscriber orders them by seq, drops the overlap and refills any hole from the
    snapshot service, so nothing between history and live is lost or doubled. A viewer
    that stops reading only stops its own socket (lossless mode): the publisher never
    waits, and the holes left upstream are filled from the snapshot when it reads again.

    Raises:
        BusTimeout: no proxy answered at `config.bus` within `ready_timeout`.
    """
    from dkl.bus import AsyncSubscriber, BusError

    snapshots = {config.source: config.snapshot} if config.snapshot else {}
    sub = AsyncSubscriber(
        config.bus, ("run.",), snapshots=snapshots, maxlen=config.maxlen, lossless=True
    )
    try:
        await sub.wait_ready(config.ready_timeout)
        if config.snapshot:
            try:
                await sub.catch_up(config.source, 0)
            except BusError as err:  # no agent (yet, or any more): live documents still flow
                warn(f"no history from {config.snapshot} ({err}); showing live documents only")
        while True:
            message = await sub.recv(timeout=1.0)
            if message is not None:
                yield to_document(message)
    finally:
        sub.close()


@contextlib.asynccontextmanager
async def control_client(
    address: str, timeout: float = 5.0
) -> AsyncIterator[Callable[[str, str | None], Awaitable[Any]]]:
    """Yields `control(action, run_id)` for the dashboard: one RPC call `action()` to the agent.

    The agent checks the caller's role; a refusal arrives as `RemoteError` (e.g.
    ``[forbidden] ...``), which the dashboard shows to the operator.
    """
    from dkl.bus import AsyncRpcClient

    client = AsyncRpcClient(address, timeout=timeout)

    async def control(action: str, run_id: str | None) -> Any:
        return await client.call(action, reason=REASON, timeout=timeout)

    try:
        yield control
    finally:
        client.close()
