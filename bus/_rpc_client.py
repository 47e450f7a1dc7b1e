"""Synchronous RPC client (DEALER): deadlines, idempotent retries, heartbeats, reconnect.

Each call has a deadline. While waiting, the client pings the server every
`heartbeat_s`; if nothing at all is heard for `peer_timeout` the peer counts as dead:
the socket is rebuilt (exponential backoff) and the request resent under the same
idempotency key, so the server runs it at most once. Structured server errors are raised
as `RemoteError(code, message, retryable)`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from . import _rpc as P
from ._codec import Limits, Message, decode, encode
from ._errors import BusError, BusTimeout, MessageDecodeError
from ._net import make_socket
from ._security import ClientSecurity, secure_client

log = logging.getLogger(__name__)


class RpcClient:
    """Call methods of an `RpcServer`.

    Example:
        >>> client = RpcClient("tcp://127.0.0.1:5560", timeout=5.0)
        >>> client.call("acquire", 10, 12, exposure_s=0.01)

    Args:
        timeout: default deadline per call, seconds.
        heartbeat_s: ping interval while waiting for a reply.
        peer_timeout: silence after which the server is presumed dead (reconnect + resend).
        retry_interval: also resend (same key) after this many seconds without a reply.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        security: ClientSecurity | None = None,
        timeout: float = 10.0,
        heartbeat_s: float = 0.5,
        peer_timeout: float = 2.0,
        retry_interval: float | None = None,
        ctx: zmq.Context | None = None,
        limits: Limits = P.RPC_LIMITS,
    ) -> None:
        self.endpoint = endpoint
        self.security = security
        self.timeout = timeout
        self.heartbeat_s = heartbeat_s
        self.peer_timeout = peer_timeout
        self.retry_interval = retry_interval
        self.limits = limits
        self.client_id = P.new_id()
        self._own_ctx = ctx is None
        self._ctx = ctx or zmq.Context()
        self._sock: zmq.Socket | None = None
        self.last_heard = 0.0
        #: Counters: reconnects after a silent peer, resends, malformed frames dropped.
        self.stats = {"reconnects": 0, "resends": 0, "malformed": 0}
        self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        sock = make_socket(self._ctx, zmq.DEALER)
        secure_client(sock, self.security)
        sock.connect(self.endpoint)
        self._sock = sock

    @property
    def peer_alive(self) -> bool:
        """Whether the server was heard from within `peer_timeout`."""
        return time.monotonic() - self.last_heard <= self.peer_timeout

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call `method` remotely and return its result.

        Raises:
            BusTimeout: no reply before the deadline.
            RemoteError: the server answered with a structured error.
        """
        budget = self.timeout if timeout is None else timeout
        key = key or P.new_id()
        cid = P.new_id()
        start = time.monotonic()
        deadline = start + budget
        request = encode(P.call_message(method, args, kwargs, key, budget, self.client_id, cid))
        reply = self._exchange(request, cid, deadline, retry=True)
        return P.result_of(reply)

    def ping(self, timeout: float | None = None) -> float:
        """Round-trip a heartbeat; returns seconds taken. Raises `BusTimeout` if silent."""
        start = time.monotonic()
        msg = P.ping_message(self.client_id)
        budget = self.timeout if timeout is None else timeout
        self._exchange(encode(msg), msg.cid, start + budget, retry=False, want=P.PONG)
        return time.monotonic() - start

    def _exchange(
        self,
        request: list,
        cid: str | None,
        deadline: float,
        *,
        retry: bool,
        want: str = P.REPLY,
    ) -> Message:
        assert self._sock is not None
        now = time.monotonic()
        self._send(request, deadline)
        quiet_since = now
        next_ping = now + self.heartbeat_s
        next_retry = now + self.retry_interval if retry and self.retry_interval else float("inf")
        backoff = 0.05
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise BusTimeout(
                    f"no reply from {self.endpoint} within the deadline "
                    f"({self.stats['reconnects']} reconnects)"
                )
            wait = max(
                0.0, min(deadline, next_ping, next_retry, quiet_since + self.peer_timeout) - now
            )
            if self._sock.poll(wait * 1000 + 1, zmq.POLLIN):
                msg = self._receive()
                now = time.monotonic()
                if msg is not None:
                    self.last_heard = quiet_since = now
                    if msg.topic == want and msg.cid == cid:
                        return msg
                continue
            if now - quiet_since >= self.peer_timeout:
                self.stats["reconnects"] += 1
                log.warning(
                    "RPC peer %s silent for %.1fs; reconnecting", self.endpoint, now - quiet_since
                )
                self._connect()
                self._send(request, deadline)
                quiet_since = now + min(backoff, max(0.0, deadline - now))
                backoff = min(backoff * 2, 1.0)
                continue
            if now >= next_retry:
                self.stats["resends"] += 1
                self._send(request, deadline)
                next_retry = now + (self.retry_interval or 0)
            if now >= next_ping:
                self._send(encode(P.ping_message(self.client_id)), deadline)
                next_ping = now + self.heartbeat_s

    def _send(self, frames: list, deadline: float) -> None:
        assert self._sock is not None
        try:
            self._sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected yet: the heartbeat/resend logic will try again
        except zmq.ZMQError as err:
            raise BusError(f"cannot send to {self.endpoint}: {err}") from err

    def _receive(self) -> Message | None:
        assert self._sock is not None
        frames = self._sock.recv_multipart(copy=False)
        try:
            return decode(frames, self.limits)
        except MessageDecodeError as err:
            self.stats["malformed"] += 1
            log.warning("dropped malformed RPC reply: %s", err)
            return None

    def close(self) -> None:
        """Close the socket (and the context if this client made it)."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
