"""Thin asyncio API (zmq.asyncio) over the same protocol logic as the sync one.

`AsyncSubscriber` reuses `Inbox` (decode, order, conflate, holes) and the proxy hello
handshake; `AsyncRpcClient` speaks the `_rpc` protocol with the same deadline,
heartbeat, reconnect and idempotent-retry rules as `RpcClient`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Mapping
from typing import Any

import zmq
import zmq.asyncio

from . import _rpc as P
from ._codec import DEFAULT_LIMITS, Limits, Message, decode, encode, message_from_dict
from ._errors import BusError, BusTimeout, MessageDecodeError
from ._inbox import Inbox
from ._net import make_socket
from ._proxy import HELLO_PREFIX
from ._security import ClientSecurity, secure_client
from ._sequence import SubscriberStats


class AsyncRpcClient:
    """asyncio twin of `RpcClient` (same arguments, `await client.call(...)`)."""

    def __init__(
        self,
        endpoint: str,
        *,
        security: ClientSecurity | None = None,
        timeout: float = 10.0,
        heartbeat_s: float = 0.5,
        peer_timeout: float = 2.0,
        retry_interval: float | None = None,
        ctx: zmq.asyncio.Context | None = None,
        limits: Limits = P.RPC_LIMITS,
    ) -> None:
        self.endpoint, self.security, self.timeout = endpoint, security, timeout
        self.heartbeat_s, self.peer_timeout = heartbeat_s, peer_timeout
        self.retry_interval, self.limits = retry_interval, limits
        self.client_id = P.new_id()
        self._own_ctx = ctx is None
        self._ctx = ctx or zmq.asyncio.Context()
        self._sock: Any = None
        self.stats = {"reconnects": 0, "resends": 0, "malformed": 0}
        self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self._sock = make_socket(self._ctx, zmq.DEALER)
        secure_client(self._sock, self.security)
        self._sock.connect(self.endpoint)

    async def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call `method` remotely; raises `BusTimeout` or `RemoteError` like `RpcClient`."""
        budget = self.timeout if timeout is None else timeout
        cid = P.new_id()
        frames = encode(
            P.call_message(method, args, kwargs, key or P.new_id(), budget, self.client_id, cid)
        )
        reply = await self._exchange(frames, cid, time.monotonic() + budget, P.REPLY, True)
        return P.result_of(reply)

    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip a heartbeat; returns seconds taken."""
        start = time.monotonic()
        msg = P.ping_message(self.client_id)
        budget = self.timeout if timeout is None else timeout
        await self._exchange(encode(msg), msg.cid, start + budget, P.PONG, False)
        return time.monotonic() - start

    async def _exchange(
        self, frames: list, cid: str | None, deadline: float, want: str, retry: bool
    ) -> Message:
        now = time.monotonic()
        await self._sock.send_multipart(frames, copy=False)
        quiet_since, next_ping = now, now + self.heartbeat_s
        next_retry = now + self.retry_interval if retry and self.retry_interval else float("inf")
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise BusTimeout(f"no reply from {self.endpoint} within the deadline")
            wait = min(deadline, next_ping, next_retry, quiet_since + self.peer_timeout) - now
            if await self._sock.poll(max(0.0, wait) * 1000 + 1, zmq.POLLIN):
                raw = await self._sock.recv_multipart(copy=False)
                try:
                    msg = decode(raw, self.limits)
                except MessageDecodeError:
                    self.stats["malformed"] += 1
                    continue
                quiet_since = time.monotonic()
                if msg.topic == want and msg.cid == cid:
                    return msg
                continue
            if now - quiet_since >= self.peer_timeout:
                self.stats["reconnects"] += 1
                self._connect()
                await self._sock.send_multipart(frames, copy=False)
                quiet_since = now
            elif now >= next_retry:
                self.stats["resends"] += 1
                await self._sock.send_multipart(frames, copy=False)
                next_retry = now + (self.retry_interval or 0)
            if now >= next_ping:
                await self._sock.send_multipart(encode(P.ping_message(self.client_id)))
                next_ping = now + self.heartbeat_s

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._own_ctx:
            self._ctx.term()


class AsyncSubscriber:
    """asyncio twin of `Subscriber`; create, then ``await sub.wait_ready()``."""

    def __init__(
        self,
        endpoint: str,
        topics: Collection[str] = ("",),
        *,
        snapshots: Mapping[str, str] | None = None,
        conflate: Mapping[str, str | None] | Collection[str] = (),
        maxlen: int = 10_000,
        lossless: bool = False,
        catch_up: bool = True,
        gap_timeout: float = 0.5,
        limits: Limits = DEFAULT_LIMITS,
        security: ClientSecurity | None = None,
        snapshot_security: ClientSecurity | None = None,
        ctx: zmq.asyncio.Context | None = None,
    ) -> None:
        self.snapshots = dict(snapshots or {})
        self.inbox = Inbox(
            limits=limits,
            conflate=conflate,
            maxlen=maxlen,
            lossless=lossless,
            catch_up=catch_up,
            can_fill=self.snapshots.__contains__,
            gap_timeout=gap_timeout,
        )
        self._snapshot_security = snapshot_security
        self._own_ctx = ctx is None
        self._ctx = ctx or zmq.asyncio.Context()
        self._clients: dict[str, AsyncRpcClient] = {}
        self._sock = make_socket(self._ctx, zmq.SUB, hwm=100_000)
        secure_client(self._sock, security)
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._sock.connect(endpoint)
        self._hello: bytes | None = None
        self.ready = False

    @property
    def stats(self) -> SubscriberStats:
        return self.inbox.stats

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Hello round trip through the proxy (see `Subscriber.wait_ready`)."""
        self._hello = HELLO_PREFIX + secrets.token_hex(8).encode()
        self.ready = False
        self._sock.setsockopt(zmq.SUBSCRIBE, self._hello)
        deadline = time.monotonic() + timeout
        try:
            while not self.ready:
                left = deadline - time.monotonic()
                if left <= 0 or not await self._sock.poll(left * 1000, zmq.POLLIN):
                    raise BusTimeout("no readiness reply from the bus proxy in time")
                await self._read_one()
        finally:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, self._hello)

    async def _read_one(self) -> None:
        frames = await self._sock.recv_multipart(copy=False)
        first = frames[0].bytes
        if first.startswith(b"_bus."):
            self.ready = self.ready or first == self._hello
            return
        self.inbox.feed(frames)

    async def recv(self, timeout: float | None = None) -> Message | None:
        """The next message in order, or None when `timeout` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            msg = self.inbox.pop()
            if msg is not None:
                return msg
            await self._repair()
            expiry = self.inbox.expire()
            msg = self.inbox.pop()
            if msg is not None:
                return msg
            waits = [] if expiry is None else [expiry]
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                waits.append(left)
            wait_ms = min(waits) * 1000 + 1 if waits else None
            if not self.inbox.full and await self._sock.poll(wait_ms, zmq.POLLIN):
                await self._read_one()

    async def recv_many(self, limit: int = 1000, timeout: float | None = None) -> list[Message]:
        """The messages ready now (see `Subscriber.recv_many`)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        first = await self.recv(timeout)
        return [] if first is None else [first, *self.inbox.pop_many(limit - 1)]

    async def _repair(self) -> None:
        for (src, epoch), first in self.inbox.wants_fill():
            try:
                messages = await self._fetch(src, first, epoch)
            except BusError:
                self.inbox.fill_failed((src, epoch))
                continue
            self.inbox.stats.resyncs += 1
            self.inbox.apply_snapshot(messages)
            if any(s == (src, epoch) and f == first for s, f, _ in self.inbox.tracker.holes()):
                self.inbox.fill_failed((src, epoch))

    async def _fetch(self, src: str, since_seq: int, epoch: int | None) -> list[Message]:
        if src not in self._clients:
            self._clients[src] = AsyncRpcClient(
                self.snapshots[src], security=self._snapshot_security, ctx=self._ctx, timeout=5
            )
        out: list[Message] = []
        while True:
            page = await self._clients[src].call(
                "snapshot", since_seq=since_seq, src=src, epoch=epoch
            )
            out.extend(message_from_dict(m) for m in page.get("messages", []))
            nxt = page.get("next_seq")
            if not page.get("more") or not isinstance(nxt, int) or nxt <= since_seq:
                return out
            since_seq = nxt

    async def catch_up(self, src: str, since_seq: int = 0) -> int:
        """Fetch `src`'s history now (late join); returns messages added."""
        before = self.stats.filled
        self.inbox.apply_snapshot(await self._fetch(src, since_seq, None))
        return self.stats.filled - before

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()
