"""Test helpers: a misbehaving proxy and a conformance check for any bus pair.

Not imported by the runtime. `ChaosProxy` stands in for the real proxy but drops,
duplicates and reorders data messages (seeded, so failures reproduce); readiness
hellos always pass. `check_pubsub` verifies the publisher/subscriber contract against
any pair of proxy endpoints.
"""

from __future__ import annotations

import random
import secrets
import threading
from dataclasses import dataclass, field

import numpy as np
import zmq

from ._errors import BusTimeout
from ._net import bind, make_socket
from ._proxy import HELLO_PREFIX, ProxyEndpoints
from ._pubsub import Publisher, Subscriber


@dataclass
class ChaosCounts:
    """What the chaos proxy did, for asserting that the test really exercised it."""

    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    dropped_seqs: list[bytes] = field(default_factory=list)


class ChaosProxy:
    """An XSUB/XPUB proxy in Python that drops, duplicates and reorders messages.

    Args:
        drop, duplicate, reorder: per-message probabilities.
        seed: random seed (reproducible chaos).
        spare_first: forward this many messages untouched first.
    """

    def __init__(
        self,
        *,
        drop: float = 0.05,
        duplicate: float = 0.05,
        reorder: float = 0.05,
        seed: int = 0,
        spare_first: int = 0,
    ) -> None:
        self.p = (drop, duplicate, reorder)
        self.rng = random.Random(seed)
        self.spare_first = spare_first
        self.counts = ChaosCounts()
        self.endpoints = ProxyEndpoints("", "")
        self._ready = threading.Event()
        self._ctl = f"inproc://dkl-chaos-{secrets.token_hex(6)}"
        self._ctx: zmq.Context | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 5.0) -> ChaosProxy:
        self._ctx = zmq.Context()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dkl-chaos")
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BusTimeout("chaos proxy did not start")
        return self

    def _run(self) -> None:
        ctx = self._ctx
        assert ctx is not None
        xsub, xpub = make_socket(ctx, zmq.XSUB), make_socket(ctx, zmq.XPUB)
        ctl = make_socket(ctx, zmq.PAIR)
        ctl.bind(self._ctl)
        front = bind(xsub, "tcp://127.0.0.1:0")
        back = bind(xpub, "tcp://127.0.0.1:0")
        xsub.send(b"\x01")
        self.endpoints = ProxyEndpoints(front, back)
        self._ready.set()
        poller = zmq.Poller()
        for sock in (xsub, xpub, ctl):
            poller.register(sock, zmq.POLLIN)
        held: list[list[bytes]] = []
        try:
            while True:
                events = dict(poller.poll())
                if ctl in events:
                    break
                if xpub in events:
                    sub = xpub.recv()
                    if sub[:1] == b"\x01" and sub[1:].startswith(HELLO_PREFIX):
                        xpub.send(sub[1:])
                if xsub in events:
                    frames = xsub.recv_multipart()
                    for out in self._mangle(frames, held):
                        xpub.send_multipart(out)
        finally:
            for sock in (xsub, xpub, ctl):
                sock.close(linger=0)

    def _mangle(self, frames: list[bytes], held: list[list[bytes]]) -> list[list[bytes]]:
        drop, dup, reorder = self.p
        if self.spare_first > 0:
            self.spare_first -= 1
            self.counts.forwarded += 1
            return [frames]
        roll = self.rng.random()
        out: list[list[bytes]] = []
        if roll < drop:
            self.counts.dropped += 1
            self.counts.dropped_seqs.append(frames[1])
        elif roll < drop + dup:
            self.counts.duplicated += 1
            out += [frames, frames]
        elif roll < drop + dup + reorder and not held:
            self.counts.reordered += 1
            held.append(frames)
            return []
        else:
            out.append(frames)
        if held:
            out.append(held.pop())  # the held message now arrives after a later one
        self.counts.forwarded += len(out)
        return out

    def stop(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        ctl = ctx.socket(zmq.PAIR)
        ctl.linger = 2000  # a zero linger could drop the stop command unread
        ctl.connect(self._ctl)
        ctl.send(b"stop")
        ctl.close()
        if self._thread is not None:
            self._thread.join(2)
        ctx.term()

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def check_pubsub(endpoints: ProxyEndpoints, n: int = 50, timeout: float = 5.0) -> None:
    """Conformance: a ready subscriber gets every message, in order, arrays intact.

    Raises:
        AssertionError: describing the first broken rule.
    """
    ctx = zmq.Context()
    try:
        sub = Subscriber(endpoints.backend, ["conf."], ctx=ctx, wait=timeout)
        pub = Publisher(endpoints.frontend, "conformance", ctx=ctx, wait=timeout)
        sent = []
        for i in range(n):
            arr = np.arange(i + 1, dtype=np.float32).reshape(1, -1)
            sent.append(pub.publish("conf.item", {"i": i, "nested": {"a": [arr]}}))
        for expected in sent:
            got = sub.recv(timeout)
            assert got is not None, f"message {expected.seq} never arrived"
            assert (got.src, got.epoch, got.seq) == (expected.src, expected.epoch, expected.seq)
            assert got.body["i"] == expected.body["i"]
            np.testing.assert_array_equal(
                got.body["nested"]["a"][0], expected.body["nested"]["a"][0]
            )
        assert sub.stats.gaps == [] and sub.stats.duplicates == 0, sub.stats
        pub.close()
        sub.close()
    finally:
        ctx.term()


class LossyRelay:
    """A ROUTER->DEALER relay in front of an RPC server that loses the first replies.

    Clients connect to `endpoint`; `drop_replies` replies are swallowed, so the client
    must retry under the same idempotency key.
    """

    def __init__(self, server_endpoint: str, drop_replies: int = 1) -> None:
        self.server_endpoint = server_endpoint
        self.drop_replies = drop_replies
        self.dropped = 0
        self.endpoint = ""
        self._ctl = f"inproc://dkl-relay-{secrets.token_hex(6)}"
        self._ready = threading.Event()
        self._ctx = zmq.Context()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dkl-relay")

    def start(self) -> LossyRelay:
        self._thread.start()
        if not self._ready.wait(5):
            raise BusTimeout("relay did not start")
        return self

    def _run(self) -> None:
        front = make_socket(self._ctx, zmq.ROUTER)
        ctl = make_socket(self._ctx, zmq.PAIR)
        ctl.bind(self._ctl)
        self.endpoint = bind(front, "tcp://127.0.0.1:0")
        dealers: dict[bytes, zmq.Socket] = {}
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(ctl, zmq.POLLIN)
        self._ready.set()
        try:
            while True:
                events = dict(poller.poll())
                if ctl in events:
                    break
                for sock in [s for s in events if s is not front and s is not ctl]:
                    ident = next(k for k, v in dealers.items() if v is sock)
                    frames = sock.recv_multipart()
                    if frames[0] == b"rpc.reply" and self.dropped < self.drop_replies:
                        self.dropped += 1
                        continue
                    front.send_multipart([ident, *frames])
                if front in events:
                    ident, *frames = front.recv_multipart()
                    if ident not in dealers:
                        dealer = make_socket(self._ctx, zmq.DEALER)
                        dealer.connect(self.server_endpoint)
                        dealers[ident] = dealer
                        poller.register(dealer, zmq.POLLIN)
                    dealers[ident].send_multipart(frames)
        finally:
            for sock in (front, ctl, *dealers.values()):
                sock.close(linger=0)

    def stop(self) -> None:
        ctl = self._ctx.socket(zmq.PAIR)
        ctl.linger = 2000  # a zero linger could drop the stop command unread
        ctl.connect(self._ctl)
        ctl.send(b"stop")
        ctl.close()
        self._thread.join(2)
        self._ctx.term()

    def __enter__(self) -> LossyRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
