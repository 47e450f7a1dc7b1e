"""Sequence numbers: stamping on the publisher side, gap/duplicate tracking on the other.

Pure protocol logic, no I/O, shared by the sync and asyncio subscribers. Every publisher
stream is ``(src, epoch)``; `seq` counts 0, 1, 2, ... within it. `SequenceTracker`
delivers each stream in order exactly once, holds early arrivals, reports every hole as
a `Gap`, and lets the caller fill holes (from a snapshot) or declare them lost.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from ._codec import Message


class Sequencer:
    """Stamps `src`, `epoch`, `seq` and wall time on outgoing messages (thread-safe)."""

    def __init__(self, src: str, epoch: int | None = None, first_seq: int = 0) -> None:
        self.src = src
        self.epoch = epoch if epoch is not None else secrets.randbits(53)
        self._next = first_seq
        self._lock = threading.Lock()

    @property
    def next_seq(self) -> int:
        """The seq the next stamped message will get."""
        return self._next

    def stamp(self, topic: str, body: dict, kind: str = "", cid: str | None = None) -> Message:
        """A new `Message` carrying the next sequence number of this stream."""
        with self._lock:
            seq = self._next
            self._next += 1
        return Message(topic, body, kind or topic, self.src, self.epoch, seq, time.time(), cid)

    def stamp_batch(self, topic: str, count: int, kind: str = "") -> Message:
        """The first of `count` consecutive messages (empty body): a batch's header."""
        with self._lock:
            first = self._next
            self._next += count
        return Message(topic, {}, kind or topic, self.src, self.epoch, first, time.time())


@dataclass
class Gap:
    """A hole seen in one stream: seqs `first`..`last` (inclusive) arrived late or never.

    `lost` counts how many of them were given up on (never delivered); a gap with
    ``lost == 0`` once closed was healed by reordering or a snapshot fill.
    """

    src: str
    epoch: int
    first: int
    last: int
    lost: int = 0
    closed: bool = False

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass
class SubscriberStats:
    """Counters a subscriber keeps; every dropped or repaired message shows up here."""

    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    malformed: int = 0
    filled: int = 0
    lost: int = 0
    conflated: int = 0
    overflowed: int = 0
    resyncs: int = 0
    joined_late: int = 0
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class _Stream:
    next: int
    pending: dict[int, Message] = field(default_factory=dict)
    open: list[Gap] = field(default_factory=list)


class SequenceTracker:
    """Reorders and de-duplicates per-stream messages; records gaps in `stats`."""

    def __init__(self, stats: SubscriberStats | None = None, max_pending: int = 10_000) -> None:
        self.stats = stats if stats is not None else SubscriberStats()
        self.max_pending = max_pending
        self._streams: dict[tuple[str, int], _Stream] = {}

    def known(self, stream: tuple[str, int]) -> bool:
        """Whether any message of `stream` has been seen or expected."""
        return stream in self._streams

    def expect(self, stream: tuple[str, int], next_seq: int) -> None:
        """Start (or restart) tracking `stream` expecting `next_seq` next."""
        self._streams[stream] = _Stream(next=next_seq)

    def next_seq(self, stream: tuple[str, int]) -> int | None:
        """The seq expected next on `stream`, or None if unknown."""
        st = self._streams.get(stream)
        return st.next if st else None

    def record_missed(self, msg: Message) -> None:
        """Note that `msg` (e.g. from a snapshot) was missed without any hole showing it.

        Called before offering it; a lost tail is seen only when someone asks the service.
        """
        st = self._streams.get(msg.stream)
        if st is None or msg.seq < st.next or msg.seq in st.pending:
            return
        if st.pending and msg.seq < max(st.pending):
            return  # inside a hole already recorded
        last = self.stats.gaps[-1] if self.stats.gaps else None
        if (
            last
            and last.closed
            and (last.src, last.epoch) == msg.stream
            and last.last == msg.seq - 1
        ):
            last.last = msg.seq
        else:
            self.stats.gaps.append(Gap(msg.src, msg.epoch, msg.seq, msg.seq, closed=True))

    def resume_points(self) -> dict[tuple[str, int], int]:
        """Per stream, the first seq not yet delivered."""
        return {key: st.next for key, st in self._streams.items()}

    def offer(self, msg: Message) -> list[Message]:
        """Accept one arrival; returns the messages now deliverable, in order."""
        key = msg.stream
        st = self._streams.get(key)
        if st is None:
            st = self._streams[key] = _Stream(next=msg.seq)
        if msg.seq == st.next and not st.pending:  # in order, nothing held: the usual case
            st.next += 1
            return [msg]
        if msg.seq < st.next or msg.seq in st.pending:
            self.stats.duplicates += 1
            return []
        if msg.seq > st.next:
            self._hold(st, key, msg)
            if len(st.pending) > self.max_pending:
                return self.give_up(key)
            return []
        out = [msg]
        st.next += 1
        self._drain(st, out)
        return out

    def offer_many(self, msgs: list[Message]) -> list[Message]:
        """`offer` for consecutive messages of one stream (a decoded batch).

        Returns `msgs` itself when all of them were deliverable in order (the usual case).
        """
        key = msgs[0].stream
        st = self._streams.get(key)
        if st is None:
            st = self._streams[key] = _Stream(next=msgs[0].seq)
        if msgs[0].seq == st.next and not st.pending:
            st.next += len(msgs)
            return msgs
        out: list[Message] = []
        for msg in msgs:
            out.extend(self.offer(msg))
        return out

    def _hold(self, st: _Stream, key: tuple[str, int], msg: Message) -> None:
        below = [s for s in st.pending if s < msg.seq]
        start = (max(below) + 1) if below else st.next
        st.pending[msg.seq] = msg
        if start <= msg.seq - 1 and not any(g.first <= start <= g.last for g in st.open):
            gap = Gap(key[0], key[1], start, msg.seq - 1)
            st.open.append(gap)
            self.stats.gaps.append(gap)

    def _drain(self, st: _Stream, out: list[Message]) -> None:
        while st.next in st.pending:
            out.append(st.pending.pop(st.next))
            st.next += 1
        for gap in [g for g in st.open if g.last < st.next]:
            gap.closed = True
            st.open.remove(gap)

    def has_holes(self) -> bool:
        """Whether any stream holds early arrivals behind a hole (cheap; checked per read)."""
        return any(st.pending for st in self._streams.values())

    def holes(self) -> list[tuple[tuple[str, int], int, int]]:
        """Open holes as ``(stream, first_missing, last_missing)``."""
        out = []
        for key, st in self._streams.items():
            if st.pending:
                out.append((key, st.next, min(st.pending) - 1))
        return out

    def give_up(self, stream: tuple[str, int]) -> list[Message]:
        """Declare the first hole of `stream` lost; returns what becomes deliverable."""
        st = self._streams[stream]
        if not st.pending:
            return []
        resume = min(st.pending)
        missing = resume - st.next
        self.stats.lost += missing
        for gap in st.open:
            overlap = min(gap.last, resume - 1) - max(gap.first, st.next) + 1
            gap.lost += max(overlap, 0)
        st.next = resume
        out: list[Message] = []
        self._drain(st, out)
        return out
