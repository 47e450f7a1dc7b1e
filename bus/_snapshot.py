"""The Clone pattern's service side: serve "messages since seq N" from an append-only source.

A source is anything with ``since(seq) -> Iterable[Message]``: a `MessageLog` (the run
journal), a `MessageRing` (a publisher's recent history) or your own. `snapshot_page`
is the pure function behind the ``snapshot`` RPC method, so a service that already has
an RPC server (the agent's control socket) can expose it as one more method.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from ._codec import Message, array_load, message_from_dict, message_to_dict, messages
from ._errors import MessageDecodeError
from ._rpc_client import RpcClient
from ._rpc_server import RpcServer

#: Most messages and raw bytes one snapshot reply carries; the client pages for more.
PAGE_MESSAGES = 1000
PAGE_BYTES = 32 * 2**20
_PAGE_BUFFERS = 3000


class SnapshotSource(Protocol):
    """An append-only store of one service's messages."""

    def since(self, since_seq: int) -> Iterable[Message]:
        """Messages with ``seq >= since_seq`` in publication order."""
        ...


class MessageRing:
    """Recent messages in memory, bounded by count and by array bytes.

    The default source behind a `Publisher` without a journal. A batch is kept as its
    first message and its bodies, and expanded only when asked for; the ring drops whole
    batches, so it holds at least the last `maxlen` messages and at most one batch more.
    """

    def __init__(self, maxlen: int = 10_000, max_bytes: int = 64 * 2**20) -> None:
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self._chunks: deque[tuple[Message, list[Any] | None, int, int]] = deque()
        self._count = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, msg: Message, size: int | None = None) -> None:
        """Remember `msg`; `size` (bytes in its arrays) is computed when not given."""
        self._add((msg, None, 1, array_load(msg.body)[1] if size is None else size))

    def extend(self, first: Message, bodies: list[Any], size: int | None = None) -> None:
        """Remember a batch (see `encode_batch`); `size` is the bytes in all its arrays."""
        if size is None:
            size = array_load(bodies)[1]
        self._add((first, bodies, len(bodies), size))

    def _add(self, chunk: tuple[Message, list[Any] | None, int, int]) -> None:
        with self._lock:
            self._chunks.append(chunk)
            self._count += chunk[2]
            self._bytes += chunk[3]
            while self._chunks and (
                self._count - self._chunks[0][2] >= self.maxlen or self._bytes > self.max_bytes
            ):
                _, _, count, size = self._chunks.popleft()
                self._count -= count
                self._bytes -= size

    def since(self, since_seq: int) -> Iterator[Message]:
        with self._lock:
            chunks = list(self._chunks)
        for first, bodies, count, _ in chunks:
            if first.seq + count <= since_seq:
                continue
            for msg in [first] if bodies is None else messages(first, bodies):
                if msg.seq >= since_seq:
                    yield msg

    def __len__(self) -> int:
        return self._count


def snapshot_page(
    source: SnapshotSource,
    since_seq: int = 0,
    src: str | None = None,
    epoch: int | None = None,
    max_messages: int = PAGE_MESSAGES,
) -> dict[str, Any]:
    """One page of the snapshot protocol.

    Returns:
        ``{"messages": [...], "more": bool, "next_seq": int}``; ask again from
        `next_seq` while `more` is true. Messages are `message_to_dict` maps.
    """
    if not isinstance(since_seq, int) or since_seq < 0:
        raise ValueError("since_seq must be a non-negative integer")
    out: list[dict[str, Any]] = []
    buffers = nbytes = 0
    next_seq = since_seq
    for msg in source.since(since_seq):
        if (src is not None and msg.src != src) or (epoch is not None and msg.epoch != epoch):
            continue
        count, size = array_load(msg.body)
        full = len(out) >= min(max_messages, PAGE_MESSAGES)
        if out and (full or buffers + count > _PAGE_BUFFERS or nbytes + size > PAGE_BYTES):
            return {"messages": out, "more": True, "next_seq": next_seq}
        out.append(message_to_dict(msg))
        buffers += count
        nbytes += size
        next_seq = msg.seq + 1
    return {"messages": out, "more": False, "next_seq": next_seq}


class _SnapshotService:
    def __init__(self, source: SnapshotSource) -> None:
        self.source = source

    def snapshot(
        self,
        since_seq: int = 0,
        src: str | None = None,
        epoch: int | None = None,
        max_messages: int = PAGE_MESSAGES,
    ) -> dict[str, Any]:
        return snapshot_page(self.source, since_seq, src, epoch, max_messages)


class SnapshotServer(RpcServer):
    """An RPC server with one method, ``snapshot``, over `source`; viewers may call it."""

    def __init__(
        self, source: SnapshotSource, endpoint: str = "tcp://127.0.0.1:0", **options: Any
    ) -> None:
        options.setdefault("roles", {"snapshot": {"viewer", "operator", "agent", "instrument"}})
        super().__init__(_SnapshotService(source), ["snapshot"], endpoint, **options)


def fetch_snapshot(
    client: RpcClient,
    since_seq: int = 0,
    src: str | None = None,
    epoch: int | None = None,
    timeout: float | None = None,
) -> list[Message]:
    """Every message since `since_seq` from a service's ``snapshot`` method (all pages).

    Raises:
        BusTimeout, RemoteError: the service did not answer or refused.
        MessageDecodeError: a message in the reply is malformed.
    """
    out: list[Message] = []
    while True:
        page = client.call("snapshot", since_seq=since_seq, src=src, epoch=epoch, timeout=timeout)
        if not isinstance(page, dict) or not isinstance(page.get("messages"), list):
            raise MessageDecodeError("snapshot reply is not a page")
        out.extend(message_from_dict(m) for m in page["messages"])
        next_seq = page.get("next_seq")
        if not page.get("more") or not isinstance(next_seq, int) or next_seq <= since_seq:
            return out
        since_seq = next_seq
