"""Publish/subscribe through real proxies on loopback: joins, chaos, fuzz, restarts."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import msgpack
import numpy as np
import zmq

from dkl.bus import (
    AsyncSubscriber,
    Limits,
    Message,
    MessageLog,
    MessageRing,
    Proxy,
    Publisher,
    Subscriber,
    encode,
)
from dkl.bus._inbox import Inbox
from dkl.bus.testing import ChaosProxy, check_pubsub


def test_conformance(proxy: Proxy) -> None:
    check_pubsub(proxy.endpoints)


def test_1000_subscribers_then_a_run_miss_nothing(proxy: Proxy, ctx: zmq.Context) -> None:
    pub = Publisher(proxy.endpoints.frontend, "agent", ctx=ctx)
    missed = 0
    for i in range(1000):
        sub = Subscriber(proxy.endpoints.backend, ["run."], ctx=ctx)
        pub.publish("run.start", {"run_id": f"r{i}"})
        got = sub.recv(timeout=2.0)
        if got is None or got.topic != "run.start" or got.body["run_id"] != f"r{i}":
            missed += 1
        sub.close()
    pub.close()
    assert missed == 0


def _drain(sub: Subscriber, want: int, src: str) -> list[Message]:
    got: list[Message] = []
    stalls = 0
    while len(got) < want and stalls < 20:
        msg = sub.recv(timeout=0.2)
        if msg is None:
            stalls += 1
            sub.catch_up(src)  # a lost tail shows no later message: ask the service
        else:
            got.append(msg)
    return got


def test_chaos_proxy_streams_rebuilt_and_gaps_reported(ctx: zmq.Context) -> None:
    with ChaosProxy(drop=0.08, duplicate=0.08, reorder=0.08, seed=3) as chaos:
        pub = Publisher(chaos.endpoints.frontend, "agent", ctx=ctx)
        snap = pub.serve_snapshots()
        subs = [
            Subscriber(
                chaos.endpoints.backend,
                ["run."],
                snapshots={"agent": snap},
                ctx=ctx,
                gap_timeout=5.0,
            )
            for _ in range(2)
        ]
        sent = [pub.publish("run.event", {"i": i, "x": np.full(4, i, "f4")}) for i in range(400)]
        for sub in subs:
            got = _drain(sub, len(sent), "agent")
            assert [(m.seq, m.body["i"]) for m in got] == [(m.seq, m.body["i"]) for m in sent]
            np.testing.assert_array_equal(got[-1].body["x"], sent[-1].body["x"])
            assert sub.stats.gaps and sub.stats.lost == 0 and sub.stats.duplicates > 0
            assert all(g.closed and g.lost == 0 for g in sub.stats.gaps)
            sub.close()
        assert chaos.counts.dropped and chaos.counts.duplicated and chaos.counts.reordered
        pub.close()


def _raw_publisher(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.XPUB)
    sock.linger = 0
    sock.sndhwm = 0
    sock.connect(endpoint)
    assert sock.poll(5000) and sock.recv() == b"\x01"  # the proxy subscribed: ready
    return sock


def _fuzz_frames(rng: random.Random, good: list[bytes]) -> list[bytes]:
    choice = rng.randrange(5)
    if choice == 0:  # random bytes
        return [b"fuzz.r", *(rng.randbytes(rng.randrange(40)) for _ in range(rng.randrange(4)))]
    if choice == 1:  # truncated valid message
        cut = [bytes(f) for f in good]
        cut[2] = cut[2][: rng.randrange(len(cut[2]))]
        return cut
    if choice == 2:  # oversized body
        return [good[0], good[1], msgpack.packb({"x": "y" * 3000})]
    if choice == 3:  # too many buffers
        return [good[0], good[1], good[2], *([b"x"] * 20)]
    frames = [bytes(f) for f in good]  # a flipped byte in the header
    header = bytearray(frames[1])
    header[rng.randrange(len(header))] ^= 0xFF
    frames[1] = bytes(header)
    return [frames[0], frames[1], frames[2][:-1]]


def test_10000_bad_frames_are_counted_and_never_fatal(ctx: zmq.Context) -> None:
    rng = random.Random(7)
    good = [bytes(f) for f in encode(Message("fuzz.ok", {"a": "b"}, src="f", seq=0))]
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", hwm=50_000) as proxy:
        sub = Subscriber(
            proxy.endpoints.backend,
            ["fuzz."],
            ctx=ctx,
            limits=Limits(max_body_bytes=1024, max_buffers=8),
        )
        raw = _raw_publisher(ctx, proxy.endpoints.frontend)
        host, port = proxy.endpoints.frontend.rsplit(":", 1)
        for _ in range(20):  # non-ZMTP garbage straight into the proxy's port
            with socket.create_connection((host[6:], int(port)), timeout=2) as tcp:
                tcp.sendall(rng.randbytes(200))
        for _ in range(10_000):
            raw.send_multipart(_fuzz_frames(rng, good))
        # the end marker shares the fuzz's connection: ZeroMQ orders messages only per
        # connection, and a marker from another publisher could overtake the backlog
        raw.send_multipart(encode(Message("fuzz.end", {}, src="f", seq=1)))
        while (msg := sub.recv(timeout=10.0)) is not None and msg.topic != "fuzz.end":
            pass
        assert msg is not None and msg.topic == "fuzz.end"
        assert sub.stats.malformed + sub.stats.received - 1 == 10_000
        assert sub.stats.malformed > 9000
        check_pubsub(proxy.endpoints)  # the proxy is still healthy
        raw.close()
        sub.close()


def test_conflation_keeps_latest_and_bounded_queue_drops_oldest() -> None:
    inbox = Inbox(conflate={"run.maps": "run_id"}, maxlen=5)
    for seq in range(20):
        topic = "run.maps" if seq % 2 else "run.event"
        inbox.feed(encode(Message(topic, {"run_id": "r", "i": seq}, src="a", seq=seq)))
    out = []
    while (msg := inbox.pop()) is not None:
        out.append((msg.topic, msg.body["i"]))
    assert ("run.maps", 19) in out and sum(t == "run.maps" for t, _ in out) == 1
    assert len(out) == 5 and inbox.stats.conflated == 9 and inbox.stats.overflowed > 0
    assert inbox.behind


def test_slow_lossless_consumer_never_blocks_and_loses_nothing(ctx: zmq.Context) -> None:
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", hwm=100) as proxy:
        pub = Publisher(proxy.endpoints.frontend, "fast", ctx=ctx, history=10_000)
        snap = pub.serve_snapshots()
        sub = Subscriber(
            proxy.endpoints.backend,
            ["bulk."],
            snapshots={"fast": snap},
            ctx=ctx,
            lossless=True,
            maxlen=100,
            hwm=50,
        )
        payload = np.zeros(8192, np.uint8)
        sent = [pub.publish("bulk.x", {"i": i, "p": payload}) for i in range(3000)]  # no reader
        assert pub.dropped == 0  # the publisher never blocked nor refused
        got = _drain(sub, len(sent), "fast")
        assert [m.body["i"] for m in got] == list(range(3000))
        assert sub.stats.lost == 0 and sub.stats.overflowed == 0
        assert sub.stats.filled > 0 and sub.stats.gaps  # the bus dropped; gaps were filled
        sub.close()
        pub.close()


def test_late_join_clone_pattern_from_journal(
    proxy: Proxy, ctx: zmq.Context, tmp_path: Path
) -> None:
    journal = MessageLog(tmp_path / "journal.log")
    pub = Publisher(proxy.endpoints.frontend, "agent-j", ctx=ctx, journal=journal)
    snap = pub.serve_snapshots()
    pub.publish("run.start", {"run_id": "r"})
    for i in range(5):
        pub.publish("run.event", {"i": i})
    quiet = Subscriber(proxy.endpoints.backend, ["run."], snapshots={"agent-j": snap}, ctx=ctx)
    assert quiet.catch_up("agent-j") == 6  # nothing live yet: fetch the past
    live = Subscriber(proxy.endpoints.backend, ["run."], snapshots={"agent-j": snap}, ctx=ctx)
    pub.publish("run.stop", {"run_id": "r"})  # live message reveals the past
    for sub in (quiet, live):
        topics = [m.topic for m in _drain(sub, 7, "agent-j")]
        assert topics == ["run.start"] + ["run.event"] * 5 + ["run.stop"]
        sub.close()
    pub.close()
    journal.close()


def test_proxy_killed_and_restarted_gap_reported_and_filled(ctx: zmq.Context) -> None:
    first = Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0").start()
    ends = first.endpoints
    pub = Publisher(ends.frontend, "agent", ctx=ctx, history=5000)
    snap = pub.serve_snapshots()
    sub = Subscriber(
        ends.backend, ["run."], snapshots={"agent": snap}, ctx=ctx, hwm=20, gap_timeout=5.0
    )
    payload = np.zeros(8192, np.uint8)
    try:
        for i in range(2000):  # the subscriber is not reading: most wait inside the proxy
            pub.publish("run.event", {"i": i, "p": payload})
        first.stop()  # everything queued in the proxy dies with it
        pub.ready = False
        with Proxy(ends.frontend, ends.backend):
            pub.wait_ready(5.0)
            sub.wait_ready(5.0)  # reconnected: live messages reveal the hole
            for i in range(2000, 2050):
                pub.publish("run.event", {"i": i, "p": payload})
            got = _drain(sub, 2050, "agent")
        assert [m.body["i"] for m in got] == list(range(2050))
        assert sub.stats.gaps and sub.stats.lost == 0 and sub.stats.filled > 0
        assert all(g.closed for g in sub.stats.gaps)
    finally:
        sub.close()
        pub.close()


def test_async_subscriber_catches_up_and_follows(proxy: Proxy, ctx: zmq.Context) -> None:
    pub = Publisher(proxy.endpoints.frontend, "agent-a", ctx=ctx)
    snap = pub.serve_snapshots()
    pub.publish("run.start", {"run_id": "r"})

    async def follow() -> list[str]:
        sub = AsyncSubscriber(
            proxy.endpoints.backend, ["run."], snapshots={"agent-a": snap}, lossless=True
        )
        try:
            await sub.wait_ready(5.0)
            await sub.catch_up("agent-a", 0)  # run.start was published before we joined
            pub.publish("run.event", {"i": 0})
            pub.publish("run.stop", {})
            topics = []
            while len(topics) < 3 and (msg := await sub.recv(timeout=5.0)) is not None:
                topics.append(msg.topic)
            return topics
        finally:
            sub.close()

    assert asyncio.run(follow()) == ["run.start", "run.event", "run.stop"]
    pub.close()


def test_history_ring_is_bounded_by_bytes() -> None:
    ring = MessageRing(maxlen=100, max_bytes=10_000)
    for seq in range(10):
        ring.append(Message("t", {"a": np.zeros(4000, np.uint8)}, seq=seq))
    assert [m.seq for m in ring.since(0)] == [8, 9]
