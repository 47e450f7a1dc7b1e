"""Synchronous publisher and subscriber that talk through the bus proxy.

`Publisher` stamps `(src, epoch, seq)`, journals first when given a `MessageLog`
(fsync before publish: the lossless path), keeps recent history for gap fills, and
never blocks: a slow or absent subscriber costs the publisher nothing. `Subscriber`
waits for a readiness round trip through the proxy before returning, so nothing
published afterwards can be missed, and repairs holes from the publisher's snapshot
endpoint (the Clone pattern).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import zmq

from ._codec import DEFAULT_LIMITS, Limits, Message, encode, encode_batch, messages
from ._errors import BusError, BusTimeout, RemoteError
from ._inbox import Inbox
from ._log import MessageLog
from ._net import make_socket, recv_frames, send_frames
from ._proxy import HELLO_PREFIX
from ._rpc_client import RpcClient
from ._security import ClientSecurity, secure_client
from ._sequence import Sequencer, SubscriberStats
from ._snapshot import MessageRing, SnapshotServer, fetch_snapshot

log = logging.getLogger(__name__)
_NOBLOCK = int(zmq.NOBLOCK)


class Publisher:
    """Publish messages of one stream ``(src, epoch)`` into the proxy's frontend.

    Example:
        >>> pub = Publisher(proxy.endpoints.frontend, "agent", journal=MessageLog(path))
        >>> pub.publish("run.start", {"run_id": "r1"})
    """

    def __init__(
        self,
        endpoint: str,
        src: str,
        *,
        epoch: int | None = None,
        first_seq: int = 0,
        journal: MessageLog | None = None,
        history: int = 10_000,
        history_bytes: int = 64 * 2**20,
        security: ClientSecurity | None = None,
        ctx: zmq.Context | None = None,
        hwm: int = 10_000,
        wait: float | None = 5.0,
    ) -> None:
        self.sequencer = Sequencer(src, epoch, first_seq)
        self.journal = journal
        self.history = MessageRing(history, history_bytes)
        self._own_ctx = ctx is None
        self._ctx = ctx or zmq.Context()
        self._sock = make_socket(self._ctx, zmq.XPUB, hwm=hwm)
        secure_client(self._sock, security)
        self._sock.connect(endpoint)
        self._snapshots: SnapshotServer | None = None
        self.ready = False
        #: Messages the socket refused (no proxy connected yet, or HWM reached).
        self.dropped = 0
        if wait is not None:
            try:
                self.wait_ready(wait)
            except BusTimeout:
                self.close()
                raise

    @property
    def src(self) -> str:
        return self.sequencer.src

    @property
    def epoch(self) -> int:
        return self.sequencer.epoch

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Block until the proxy has subscribed to us (its ``\\x01`` reached this socket)."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(left * 1000):
                raise BusTimeout("the bus proxy did not subscribe to this publisher in time")
            self._drain_subscriptions()

    def _drain_subscriptions(self) -> None:
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self.ready = True

    def publish(
        self, topic: str, body: dict[str, Any], *, kind: str = "", cid: str | None = None
    ) -> Message:
        """Stamp, journal (if any), remember and send one message; never blocks."""
        msg = self.sequencer.stamp(topic, body, kind, cid)
        frames = encode(msg)  # fails here, before seq is used on disk, on bad bodies
        if self.journal is not None:
            self.journal.append(msg)
        self.history.append(msg, sum(len(b) for b in frames[3:]))
        try:
            send_frames(self._sock, frames, _NOBLOCK)
        except zmq.Again:
            self.dropped += 1
        return msg

    def publish_many(
        self, topic: str, bodies: Collection[dict[str, Any]], *, kind: str = ""
    ) -> range:
        """Publish consecutive messages of one topic in as few wire messages as fit.

        For high-rate streams of small messages (per-pixel events): a batch costs the
        sockets one message, and subscribers still receive every message with its own
        seq. The journal, if any, gets one fsync for the lot. Never blocks.

        Returns:
            The seqs the messages got.
        """
        bodies = list(bodies)
        if not bodies:
            return range(self.sequencer.next_seq, self.sequencer.next_seq)
        head = self.sequencer.stamp_batch(topic, len(bodies), kind)
        wire = _batches(head, bodies, DEFAULT_LIMITS)  # fails here on bad bodies
        if self.journal is not None:
            self.journal.extend(messages(head, bodies))
        no_arrays = all(len(frames) == 3 for frames, _ in wire)
        self.history.extend(head, bodies, 0 if no_arrays else None)
        for frames, count in wire:
            try:
                send_frames(self._sock, frames, _NOBLOCK)
            except zmq.Again:
                self.dropped += count
        return range(head.seq, head.seq + len(bodies))

    def serve_snapshots(self, endpoint: str = "tcp://127.0.0.1:0", **options: Any) -> str:
        """Serve this stream's history (journal if any, else memory); returns the endpoint."""
        if self._snapshots is None:
            source = self.journal if self.journal is not None else self.history
            self._snapshots = SnapshotServer(source, endpoint, **options).start()
        return self._snapshots.endpoint

    def close(self, linger: float | None = None) -> None:
        """Close the socket, the snapshot server and (if made here) the context.

        Args:
            linger: seconds to keep delivering queued messages (default 0.2 s, so a
                process exits promptly; what is dropped stays in the journal/history).
        """
        if self._snapshots is not None:
            self._snapshots.stop()
            self._snapshots = None
        self._sock.close(linger=None if linger is None else int(linger * 1000))
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _batches(head: Message, bodies: list[Any], limits: Limits) -> list[tuple[list[Any], int]]:
    """Wire messages for a batch, each within what subscribers' `limits` accept."""
    out = []
    todo = [
        (start, bodies[start : start + limits.max_batch])
        for start in range(0, len(bodies), limits.max_batch)
    ][::-1]
    while todo:
        start, chunk = todo.pop()
        first = replace(head, seq=head.seq + start) if start else head
        if len(chunk) == 1:
            out.append((encode(replace(first, body=chunk[0])), 1))
            continue
        frames = encode_batch(first, chunk)
        if len(frames[2]) > limits.max_body_bytes or len(frames) - 3 > limits.max_buffers:
            half = len(chunk) // 2
            todo += [(start + half, chunk[half:]), (start, chunk[:half])]
        else:
            out.append((frames, len(chunk)))
    return out


class Subscriber:
    """Receive in-order, gap-checked messages from the proxy's backend.

    Args:
        topics: subscription prefixes ("" = everything). Gap detection assumes every
            topic of a source is received, so subscribe by source prefix (``run.``).
        snapshots: src -> endpoint serving ``snapshot`` (a `SnapshotServer` or a service
            control socket); holes of that src are filled from it, and a stream first
            seen mid-way is caught up from seq 0 (the Clone pattern).
        conflate: topics kept latest-only while queued (``{"run.maps": "run_id"}`` keys
            by a body field; a plain list keys by topic).
        maxlen: queue bound. `lossless=False` drops the oldest (counted in
            ``stats.overflowed``); `lossless=True` stops reading instead, so losses
            happen upstream, show up as gaps and are filled from the snapshot (a batch
            read last may take the queue past `maxlen` by its size).
    """

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
        ctx: zmq.Context | None = None,
        hwm: int = 100_000,
        wait: float | None = 5.0,
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
        self._clients: dict[str, RpcClient] = {}
        self._own_ctx = ctx is None
        self._ctx = ctx or zmq.Context()
        self._sock = make_socket(self._ctx, zmq.SUB, hwm=hwm)
        secure_client(self._sock, security)
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._sock.connect(endpoint)
        self._hello: bytes | None = None
        self.ready = False
        if wait is not None:
            try:
                self.wait_ready(wait)
            except BusTimeout:
                self.close()
                raise

    @property
    def stats(self) -> SubscriberStats:
        return self.inbox.stats

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Round-trip a hello through the proxy: afterwards nothing published is missed."""
        token = HELLO_PREFIX + secrets.token_hex(8).encode()
        self._hello = token
        self.ready = False
        self._sock.setsockopt(zmq.SUBSCRIBE, token)
        deadline = time.monotonic() + timeout
        try:
            while not self.ready:
                left = deadline - time.monotonic()
                if left <= 0 or not self._sock.poll(left * 1000):
                    raise BusTimeout("no readiness reply from the bus proxy in time")
                self._read_available()
        finally:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, token)

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message in order, or None when `timeout` (s) passes first."""
        msg = self.inbox.pop()
        if msg is not None:
            return msg
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._read_available()
            self._repair()
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
            self._sock.poll(min(waits) * 1000 + 1 if waits else None)

    def recv_many(self, limit: int = 1000, timeout: float | None = None) -> list[Message]:
        """The messages ready now, in order (at most `limit`), waiting up to `timeout` (s)
        for the first; empty if none came. For high-rate streams: one call, many messages.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        first = self.recv(timeout)
        return [] if first is None else [first, *self.inbox.pop_many(limit - 1)]

    def _read_available(self, batch: int = 1000) -> None:
        """Move up to about `batch` messages from the socket into the inbox.

        Counted in messages, not wire messages: a backlog of batches decoded at once
        would hold many thousand objects alive and make Python's collector crawl.
        """
        inbox, sock = self.inbox, self._sock  # the per-message path: keep lookups out
        for _ in range(batch):
            if inbox.full or len(inbox) >= batch:
                return
            try:
                frames = recv_frames(sock, _NOBLOCK)
            except zmq.Again:
                return
            first = frames[0]
            if first[:5] == b"_bus.":
                if first == self._hello:
                    self.ready = True
                continue
            inbox.feed(frames)

    def _repair(self) -> None:
        for (src, epoch), first in self.inbox.wants_fill():
            try:
                messages = fetch_snapshot(self._client(src), first, src, epoch)
            except (BusError, RemoteError) as err:
                log.warning("snapshot from %s failed: %s", src, err)
                self.inbox.fill_failed((src, epoch))
                continue
            self.inbox.stats.resyncs += 1
            self.inbox.apply_snapshot(messages)
            if any(s == (src, epoch) and f == first for s, f, _ in self.inbox.tracker.holes()):
                self.inbox.fill_failed((src, epoch))  # the source no longer has them

    def catch_up(self, src: str, since_seq: int | None = None) -> int:
        """Fetch `src`'s history now; returns how many messages it added.

        Use it on late join (nothing live seen yet) or after a quiet period, to repair
        a lost tail that no later message revealed. `since_seq` defaults to the resume
        point of the streams of `src` already seen (0 if none).
        """
        if since_seq is None:
            seen = [n for (s, _), n in self.inbox.tracker.resume_points().items() if s == src]
            since_seq = min(seen) if seen else 0
        before = self.stats.filled
        self.inbox.apply_snapshot(fetch_snapshot(self._client(src), since_seq, src))
        return self.stats.filled - before

    def _client(self, src: str) -> RpcClient:
        if src not in self._clients:
            self._clients[src] = RpcClient(
                self.snapshots[src], security=self._snapshot_security, ctx=self._ctx, timeout=5.0
            )
        return self._clients[src]

    def close(self) -> None:
        """Close sockets (and the context if made here)."""
        for client in self._clients.values():
            client.close()
        self._sock.close()
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
