"""Batches: many consecutive messages in one wire message, each still its own message."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from dkl.bus import (
    AsyncSubscriber,
    Limits,
    Message,
    MessageDecodeError,
    MessageLog,
    MessageRing,
    Proxy,
    Publisher,
    SequenceTracker,
    Subscriber,
    decode,
    decode_many,
    encode_batch,
    messages,
    read_log,
)
from dkl.bus._inbox import Inbox
from dkl.bus._pubsub import _batches
from dkl.bus.testing import ChaosProxy

HEAD = Message("run.event", {}, "run.event", "agent", 7, 40, 123.5, None)


def _wire(bodies: list, head: Message = HEAD) -> list[bytes]:
    return [bytes(f) for f in encode_batch(head, bodies)]


def test_batch_round_trip_gives_each_message_its_seq_and_arrays() -> None:
    bodies = [
        {"i": i, "a": np.arange(i, dtype="f4"), "f": np.ones((2, 3), order="F")} for i in range(5)
    ]
    got = decode_many(_wire(bodies))
    assert [m.seq for m in got] == [40, 41, 42, 43, 44]
    assert {(m.topic, m.kind, m.src, m.epoch, m.time, m.cid) for m in got} == {
        ("run.event", "run.event", "agent", 7, 123.5, None)
    }
    for i, msg in enumerate(got):
        assert msg.body["i"] == i
        np.testing.assert_array_equal(msg.body["a"], np.arange(i, dtype="f4"))
        assert msg.body["f"].flags.f_contiguous and not msg.body["a"].flags.writeable
    assert [(m.seq, m.body["i"]) for m in messages(HEAD, bodies)] == [
        (m.seq, m.body["i"]) for m in got
    ]
    with pytest.raises(MessageDecodeError, match="batch of 5"):
        decode(_wire(bodies))


def test_flat_and_nested_batches_agree_with_the_per_message_rules() -> None:
    flat = [{"x": i, "s": "e" * 10, "b": b"raw", "n": None} for i in range(50)]
    nested = [{"x": i, "deep": {"l": [1, {"m": 2}]}} for i in range(50)]
    assert [m.body for m in decode_many(_wire(flat))] == flat
    assert [m.body for m in decode_many(_wire(nested))] == nested


def _batch_frames(body: object, count: object = 2) -> list[bytes]:
    header = [1, "k", "s", 1, 0, 1.0, None, count]
    return [b"t", msgpack.packb(header), msgpack.packb(body, use_bin_type=True)]


def _deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        (_batch_frames([{"a": 1}]), "array of 2 maps"),  # count says 2, one body
        (_batch_frames([{"a": 1}, {"a": 2}, {"a": 3}]), "array of 2 maps"),
        (_batch_frames({"a": 1}), "array of 2 maps"),  # a map, not an array
        (_batch_frames([{"a": 1}, [1, 2]]), "array of 2 maps"),
        (_batch_frames([{"a": 1}, 5]), "array of 2 maps"),
        (_batch_frames([{"a": 1}, {b"k": 2}]), "not a string"),  # bin key in one body
        (_batch_frames([{"a": 1}, {"a": [{b"k": 2}]}]), "not a string"),
        (_batch_frames([{"a": 1}, {"a": _deep(40)}]), "deeper"),
        (_batch_frames([{"a": 1}] * 2, count=0), "batch count"),
        (_batch_frames([{"a": 1}] * 2, count=-2), "batch count"),
        (_batch_frames([{"a": 1}] * 2, count="2"), "batch count"),
        (_batch_frames([{"a": 1}] * 2, count=True), "batch count"),
        (_batch_frames([{"a": 1}] * 5000, count=5000), "batch count"),  # over max_batch
    ],
)
def test_malformed_batches_raise_decode_error(frames: list[bytes], why: str) -> None:
    with pytest.raises(MessageDecodeError, match=why):
        decode_many(frames)


def test_depth_limit_is_the_same_inside_a_batch() -> None:
    ok, bad = {"a": _deep(31)}, {"a": _deep(32)}  # the deepest allowed alone, one more
    single = [b"t", *_batch_frames(ok)[1:2], msgpack.packb(ok)]
    single[1] = msgpack.packb([1, "k", "s", 1, 0, 1.0, None])
    assert decode(single).body == ok
    with pytest.raises(MessageDecodeError, match="deeper"):
        decode([*single[:2], msgpack.packb(bad)])
    assert decode_many(_wire([ok, ok]))[1].body == ok
    with pytest.raises(MessageDecodeError, match="deeper"):
        decode_many(_wire([ok, bad]))


def test_publisher_splits_batches_to_fit_the_receivers_limits() -> None:
    limits = Limits(max_body_bytes=2000, max_buffers=4, max_batch=10)
    bodies = [{"i": i, "pad": "p" * 90} for i in range(45)] + [
        {"i": 45 + i, "a": np.full(3, i)} for i in range(9)
    ]
    wire = _batches(HEAD, bodies, limits)
    seqs = []
    for frames, count in wire:
        got = decode_many([bytes(f) for f in frames], limits)  # every part fits the limits
        assert len(got) == count
        seqs += [m.seq for m in got]
        assert [m.body["i"] for m in got] == [s - HEAD.seq for s in seqs[-count:]]
    assert seqs == list(range(40, 40 + len(bodies)))
    assert max(count for _, count in wire) == 10 and len(wire) > 6


def test_tracker_takes_a_batch_in_one_step_and_still_reorders() -> None:
    tr = SequenceTracker()
    first = messages(Message("t", {}, "t", "a", 1, 0), [{}] * 3)
    second = messages(Message("t", {}, "t", "a", 1, 3), [{}] * 4)
    third = messages(Message("t", {}, "t", "a", 1, 7), [{}] * 2)
    assert tr.offer_many(first) is first
    assert tr.offer_many(third) == []  # early: held behind the hole 3..6
    assert [g.first for g in tr.stats.gaps] == [3]
    assert [m.seq for m in tr.offer_many(second)] == list(range(3, 9))
    assert tr.offer_many(second) == [] and tr.stats.duplicates == 4
    assert tr.stats.gaps[0].closed and tr.stats.gaps[0].lost == 0


def test_inbox_conflates_and_bounds_messages_inside_batches() -> None:
    inbox = Inbox(conflate={"run.maps": "run_id"}, maxlen=6)
    maps = Message("run.maps", {}, "run.maps", "a", 1, 0)
    inbox.feed(encode_batch(maps, [{"run_id": "r", "i": i} for i in range(4)]))
    events = Message("run.event", {}, "run.event", "a", 1, 4)
    inbox.feed(encode_batch(events, [{"i": i} for i in range(8)]))
    out = [(msg.topic, msg.seq) for msg in inbox.pop_many(4)]
    out += [(msg.topic, msg.seq) for msg in inbox.pop_many(100)]
    assert inbox.stats.conflated == 3 and inbox.stats.received == 12
    assert out == [("run.event", s) for s in range(6, 12)]  # bounded: the oldest dropped
    assert inbox.stats.overflowed == 3 and inbox.stats.delivered == 6
    latest = Inbox(conflate={"run.maps": "run_id"})
    latest.feed(encode_batch(maps, [{"run_id": r, "i": i} for i, r in enumerate("aab")]))
    assert [m.body["i"] for m in latest.pop_many(10)] == [1, 2] and latest.pop() is None


def test_ring_keeps_batches_whole_and_expands_them_on_demand() -> None:
    ring = MessageRing(maxlen=10)
    ring.append(Message("t", {"i": 0}, seq=0))
    ring.extend(Message("t", {}, seq=1), [{"i": i} for i in range(1, 8)])
    ring.extend(Message("t", {}, seq=8), [{"i": i} for i in range(8, 12)])
    assert len(ring) == 11  # whole batches: at least maxlen, at most one batch more
    assert [m.body["i"] for m in ring.since(5)] == [5, 6, 7, 8, 9, 10, 11]
    ring.append(Message("t", {"i": 12}, seq=12))
    assert [m.seq for m in ring.since(0)] == list(range(1, 13))  # 0 went
    ring.extend(Message("t", {}, seq=13), [{"i": i} for i in range(13, 21)])
    assert [m.seq for m in ring.since(0)] == list(range(8, 21))  # the batch 1..7 went
    big = MessageRing(maxlen=100, max_bytes=10_000)
    big.extend(Message("t", {}, seq=0), [{"a": np.zeros(4000, np.uint8)}] * 2)
    big.extend(Message("t", {}, seq=2), [{"a": np.zeros(4000, np.uint8)}] * 2)
    assert [m.seq for m in big.since(0)] == [2, 3]


def test_published_batches_arrive_in_order_with_singles_between(
    proxy: Proxy, ctx: zmq.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd)))
    journal = MessageLog(tmp_path / "journal.log")
    pub = Publisher(proxy.endpoints.frontend, "batcher", ctx=ctx, journal=journal)
    sub = Subscriber(proxy.endpoints.backend, ["scan."], ctx=ctx)
    pub.publish("scan.start", {})
    syncs.clear()
    seqs = pub.publish_many("scan.pixel", [{"i": i, "v": np.full(2, i)} for i in range(300)])
    assert len(syncs) == 1  # one fsync for the whole batch
    pub.publish("scan.stop", {})
    assert seqs == range(1, 301) and pub.publish_many("scan.pixel", []) == range(302, 302)
    got = [sub.recv(timeout=5.0)]
    while len(got) < 302 and (more := sub.recv_many(limit=50, timeout=5.0)):
        assert len(more) <= 50
        got += more
    assert [m.seq for m in got] == list(range(302))
    assert [m.topic for m in got] == ["scan.start"] + ["scan.pixel"] * 300 + ["scan.stop"]
    np.testing.assert_array_equal(got[250].body["v"], [249, 249])
    assert sub.stats.gaps == [] and sub.stats.received == sub.stats.delivered == 302
    assert sub.recv_many(timeout=0.05) == []
    with pytest.raises(ValueError, match="limit"):
        sub.recv_many(limit=0)
    assert [m.seq for m in read_log(tmp_path / "journal.log")] == list(range(302))
    sub.close()
    pub.close()
    journal.close()


def test_chaos_proxy_batches_rebuilt_from_the_snapshot(ctx: zmq.Context) -> None:
    with ChaosProxy(drop=0.1, duplicate=0.1, reorder=0.1, seed=5) as chaos:
        pub = Publisher(chaos.endpoints.frontend, "agent", ctx=ctx)
        snap = pub.serve_snapshots()
        sub = Subscriber(
            chaos.endpoints.backend, ["run."], snapshots={"agent": snap}, ctx=ctx, gap_timeout=5.0
        )
        for start in range(0, 600, 20):
            pub.publish_many("run.event", [{"i": i} for i in range(start, start + 20)])
        got: list[Message] = []
        stalls = 0
        while len(got) < 600 and stalls < 20:
            msg = sub.recv(timeout=0.2)
            if msg is None:
                stalls += 1
                sub.catch_up("agent")
            else:
                got.append(msg)
        assert [(m.seq, m.body["i"]) for m in got] == [(i, i) for i in range(600)]
        assert sub.stats.gaps and sub.stats.lost == 0 and sub.stats.duplicates > 0
        assert chaos.counts.dropped and chaos.counts.duplicated and chaos.counts.reordered
        sub.close()
        pub.close()


def test_async_subscriber_expands_batches(proxy: Proxy, ctx: zmq.Context) -> None:
    pub = Publisher(proxy.endpoints.frontend, "async-batcher", ctx=ctx)

    async def follow() -> list[tuple[int, int]]:
        sub = AsyncSubscriber(proxy.endpoints.backend, ["line."])
        try:
            await sub.wait_ready(5.0)
            pub.publish_many("line.pixel", [{"i": i} for i in range(50)])
            got = []
            while len(got) < 50 and (msgs := await sub.recv_many(timeout=5.0)):
                got += [(msg.seq, msg.body["i"]) for msg in msgs]
            return got
        finally:
            sub.close()

    assert asyncio.run(follow()) == [(i, i) for i in range(50)]
    pub.close()
