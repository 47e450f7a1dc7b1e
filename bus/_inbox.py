"""A subscriber's receive-side logic without I/O, shared by the sync and asyncio APIs.

Frames go in (`feed`); in-order, de-duplicated messages come out (`pop`). In between:
strict decoding (malformed frames are counted, logged and dropped), the sequence
tracker, keyed conflation of latest-state topics, and a bounded queue. Holes are either
filled from a snapshot (the caller fetches; `wants_fill` says what) or, after
`gap_timeout` seconds without the missing messages, declared lost, and always recorded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from ._codec import DEFAULT_LIMITS, Limits, Message, decode_many
from ._errors import MessageDecodeError
from ._sequence import SequenceTracker, SubscriberStats

log = logging.getLogger(__name__)
_LOG_EVERY = 1000


class Inbox:
    """Decode, order, conflate and queue incoming messages (no sockets here)."""

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        conflate: Mapping[str, str | None] | Collection[str] = (),
        maxlen: int = 10_000,
        lossless: bool = False,
        catch_up: bool = True,
        can_fill: Callable[[str], bool] = lambda src: False,
        gap_timeout: float = 0.5,
    ) -> None:
        self.stats = SubscriberStats()
        self.tracker = SequenceTracker(self.stats)
        self.limits = limits
        self.conflate = dict(conflate) if isinstance(conflate, Mapping) else dict.fromkeys(conflate)
        self.maxlen = maxlen
        self.lossless = lossless
        self.catch_up = catch_up
        self.can_fill = can_fill
        self.gap_timeout = gap_timeout
        self._queue: deque[Message] = deque()
        self._latest: dict[tuple[str, Any], Message] = {}
        self._hole_since: dict[tuple[str, int], float] = {}
        self._fill_tried: set[tuple[tuple[str, int], int]] = set()

    # ------------------------------------------------------------ input

    @property
    def full(self) -> bool:
        """A lossless inbox at its bound: stop reading (the bus then drops, gaps get filled)."""
        return self.lossless and len(self._queue) >= self.maxlen

    @property
    def behind(self) -> bool:
        """The consumer is falling behind: queue over 80 % or messages already overflowed."""
        return len(self._queue) >= 0.8 * self.maxlen or self.stats.overflowed > 0

    def feed(self, frames: list[Any]) -> None:
        """Take one received multipart message (bytes or frames): one message or a batch."""
        try:
            msgs = decode_many(frames, self.limits)
        except MessageDecodeError as err:
            self.stats.malformed += 1
            if self.stats.malformed % _LOG_EVERY == 1:
                log.warning("dropped malformed message (%d so far): %s", self.stats.malformed, err)
            return
        self.offer(msgs[0])  # a new stream's first message decides late join
        if len(msgs) == 1:
            return
        rest = msgs[1:]
        self.stats.received += len(rest)
        ready = self.tracker.offer_many(rest)
        if (
            ready is rest  # in order: all of one topic
            and rest[0].topic not in self.conflate
            and len(self._queue) + len(rest) <= self.maxlen
        ):
            self._queue.extend(rest)
        else:
            for msg in ready:
                self._enqueue(msg)

    def offer(self, msg: Message, *, from_snapshot: bool = False) -> None:
        """Track one decoded message (live or from a snapshot)."""
        stream = msg.stream
        if not self.tracker.known(stream):
            if from_snapshot:
                self.tracker.expect(stream, msg.seq)
            elif msg.seq > 0 and self.catch_up and self.can_fill(msg.src):
                self.tracker.expect(stream, 0)  # Clone pattern: fetch history first
            elif msg.seq > 0:
                self.stats.joined_late += 1
        if from_snapshot:
            self.tracker.record_missed(msg)
            before = self.stats.duplicates
        else:
            self.stats.received += 1
        for ready in self.tracker.offer(msg):
            self._enqueue(ready)
        if from_snapshot and self.stats.duplicates == before:
            self.stats.filled += 1

    def apply_snapshot(self, messages: Iterable[Message]) -> None:
        """Offer messages fetched from a snapshot; duplicates are dropped as usual."""
        for msg in messages:
            self.offer(msg, from_snapshot=True)

    # ------------------------------------------------------------ holes

    def wants_fill(self) -> list[tuple[tuple[str, int], int]]:
        """Holes to fetch from a snapshot now: ``(stream, first_missing_seq)``, once each."""
        if not self.tracker.has_holes():
            return []
        now = time.monotonic()
        out = []
        for stream, first, _last in self.tracker.holes():
            self._hole_since.setdefault(stream, now)
            if self.can_fill(stream[0]) and (stream, first) not in self._fill_tried:
                self._fill_tried.add((stream, first))
                out.append((stream, first))
        return out

    def fill_failed(self, stream: tuple[str, int]) -> None:
        """A snapshot could not close the hole: give it up now."""
        self._give_up(stream)

    def expire(self) -> float | None:
        """Give up holes older than `gap_timeout`; returns seconds until the next expiry."""
        if not (self._hole_since or self._fill_tried or self.tracker.has_holes()):
            return None  # the common case, checked after every read
        now = time.monotonic()
        soonest: float | None = None
        open_streams = {stream for stream, _, _ in self.tracker.holes()}
        for stream in list(self._hole_since):
            if stream not in open_streams:
                del self._hole_since[stream]
        self._fill_tried = {t for t in self._fill_tried if t[0] in open_streams}
        for stream in open_streams:
            since = self._hole_since.setdefault(stream, now)
            left = since + self.gap_timeout - now
            if left <= 0:
                self._give_up(stream)
            else:
                soonest = left if soonest is None else min(soonest, left)
        return soonest

    def _give_up(self, stream: tuple[str, int]) -> None:
        for ready in self.tracker.give_up(stream):
            self._enqueue(ready)
        self._hole_since.pop(stream, None)

    # ------------------------------------------------------------ output

    def _enqueue(self, msg: Message) -> None:
        if msg.topic in self.conflate:
            field = self.conflate[msg.topic]
            key = (msg.topic, msg.body.get(field) if field else None)
            old = self._latest.get(key)
            if old is not None:
                try:
                    self._queue.remove(old)
                    self.stats.conflated += 1
                except ValueError:
                    pass  # already delivered
            self._latest[key] = msg
        if not self.lossless and len(self._queue) >= self.maxlen:
            dropped = self._queue.popleft()
            self.stats.overflowed += 1
            if self.stats.overflowed % _LOG_EVERY == 1:
                log.warning("subscriber queue full: dropped %s seq %d", dropped.topic, dropped.seq)
        self._queue.append(msg)

    def pop(self) -> Message | None:
        """The next in-order message, or None."""
        try:
            msg = self._queue.popleft()
        except IndexError:
            return None
        self.stats.delivered += 1
        if self.conflate and msg.topic in self.conflate:
            field = self.conflate[msg.topic]
            key = (msg.topic, msg.body.get(field) if field else None)
            if self._latest.get(key) is msg:
                del self._latest[key]
        return msg

    def pop_many(self, limit: int) -> list[Message]:
        """Up to `limit` in-order messages, oldest first (those queued now; maybe none)."""
        queue = self._queue
        if self.conflate:
            out = []
            while len(out) < limit and (msg := self.pop()) is not None:
                out.append(msg)
            return out
        if limit >= len(queue):
            out = list(queue)
            queue.clear()
        else:
            out = [queue.popleft() for _ in range(limit)]
        self.stats.delivered += len(out)
        return out

    def __len__(self) -> int:
        return len(self._queue)
