"""A run as the viewers see it: the fold of its run documents, with no I/O.

Every viewer (terminal watcher, web dashboard, report) turns the stream of run documents
(docs/design.md §8, "Messages and run documents") into the same `RunState` with
`apply`. Applying a document twice changes nothing, so a snapshot that overlaps the live
stream is harmless, and a missing event index is recorded as a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: The run-document topics, in the order a run produces them.
RUN_TOPICS = ("run.start", "run.event", "run.model", "run.maps", "run.interruption", "run.stop")


@dataclass(frozen=True)
class Document:
    """One run document: its topic, its body, the publisher's sequence number and wall time."""

    topic: str
    body: dict[str, Any]
    seq: int | None = None
    time: float | None = None


@dataclass
class RunState:
    """Everything known about one run, built only from its documents."""

    run_id: str
    start: dict[str, Any] | None = None
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    maps: dict[str, Any] | None = None
    interruptions: list[dict[str, Any]] = field(default_factory=list)
    stop: dict[str, Any] | None = None
    state: str = "running"
    last_time: float | None = None  #: wall time of the latest document applied

    @property
    def num_events(self) -> int:
        return len(self.events)

    @property
    def max_measurements(self) -> int | None:
        value = (self.start or {}).get("max_measurements")
        return int(value) if value is not None else None

    @property
    def missing(self) -> list[int]:
        """Event indices below the highest one seen that never arrived."""
        if not self.events:
            return []
        top = max(self.events)
        return [i for i in range(top) if i not in self.events]

    def ordered_events(self) -> list[dict[str, Any]]:
        return [self.events[i] for i in sorted(self.events)]

    @property
    def best(self) -> float | None:
        """The best scalar so far, as the agent reported it with the latest event."""
        if not self.events:
            return None
        value = self.events[max(self.events)].get("best")
        return float(value) if value is not None and math.isfinite(float(value)) else None

    @property
    def next_point(self) -> tuple[int, int] | None:
        """Where the agent measures next: the latest maps' or event's `next`."""
        candidates = []
        if self.events:
            last = self.events[max(self.events)]
            candidates.append((int(last.get("index", 0)), last.get("next")))
        if self.maps is not None:
            candidates.append((len(self.events) - 1, self.maps.get("next")))
        for _, point in sorted(candidates, key=lambda c: c[0], reverse=True):
            if point is not None and len(point) == 2:
                return (int(point[0]), int(point[1]))
        return None

    def apply(self, doc: Document) -> bool:
        """Fold one document into the state; returns whether anything changed."""
        body = doc.body
        if doc.time is not None:
            self.last_time = max(doc.time, self.last_time or doc.time)
        if doc.topic == "run.start":
            if self.start is not None:
                return False
            self.start = body
            self.state = "running"
        elif doc.topic == "run.event":
            index = int(body.get("index", len(self.events)))
            if index in self.events:
                return False
            self.events[index] = body
        elif doc.topic == "run.model":
            version = body.get("version")
            if any(m.get("version") == version for m in self.models):
                return False
            self.models.append(body)
        elif doc.topic == "run.maps":
            if self.maps is not None and body.get("version", 0) < self.maps.get("version", 0):
                return False
            self.maps = body
        elif doc.topic == "run.interruption":
            if body in self.interruptions:
                return False
            self.interruptions.append(body)
            self.state = str(body.get("state") or self.state)
        elif doc.topic == "run.stop":
            if self.stop is not None:
                return False
            self.stop = body
            self.state = str(body.get("exit_status", "stopped"))
        else:
            return False
        return True

    @property
    def finished(self) -> bool:
        return self.stop is not None


@dataclass
class Runs:
    """All runs seen, in the order they started; documents of unknown topics are ignored."""

    runs: dict[str, RunState] = field(default_factory=dict)
    keep: int = 20  #: runs remembered; older ones are forgotten (a long-lived viewer)

    def apply(self, doc: Document) -> RunState | None:
        """Apply a document to its run (created on first sight).

        Returns the run when the document changed it; None for a duplicate or a document
        that is not a run document.
        """
        if doc.topic not in RUN_TOPICS or not isinstance(doc.body, dict):
            return None
        run_id = str(doc.body.get("run_id", ""))
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunState(run_id=run_id)
            while len(self.runs) > self.keep:
                del self.runs[next(iter(self.runs))]
        return run if run.apply(doc) else None

    @property
    def current(self) -> RunState | None:
        """The latest run started (the one a dashboard shows)."""
        return next(reversed(self.runs.values()), None)
