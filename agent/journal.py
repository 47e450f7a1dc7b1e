"""A run's journal: every document fsync'd to `RUN_DIR/journal.log` before it is published.

The journal is one gap-free stream `("agent", epoch)`: a resumed run reopens it with the
same epoch and continues the sequence numbers, so late viewers and `dkl resume` read one
history. Without a bus the documents are only journaled.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkl.agent.record import RunRecord
from dkl.bus import Message, MessageLog, Publisher, Sequencer, read_log

SRC = "agent"
JOURNAL = "journal.log"


class JournalOnly:
    """Recorder used when there is no bus: stamps and journals, publishes nowhere."""

    def __init__(self, log: MessageLog, epoch: int, first_seq: int) -> None:
        self.journal = log
        self.sequencer = Sequencer(SRC, epoch, first_seq)

    def publish(self, topic: str, body: dict[str, Any]) -> Message:
        msg = self.sequencer.stamp(topic, body)
        self.journal.append(msg)
        return msg

    def close(self) -> None:
        self.journal.close()


def open_recorder(run_dir: Path, bus: str | None, epoch: int | None = None, first_seq: int = 0,
                  **publisher_options: Any) -> Publisher | JournalOnly:
    """A recorder for a (new or resumed) run; raises OSError when the journal can't open."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = MessageLog(run_dir / JOURNAL)
    epoch = epoch if epoch is not None else secrets.randbits(31)
    if bus is None:
        return JournalOnly(log, epoch, first_seq)
    publisher_options = {k: v for k, v in publisher_options.items() if v is not None}
    return Publisher(bus, SRC, epoch=epoch, first_seq=first_seq, journal=log,
                     **publisher_options)


@dataclass
class JournalState:
    """What `dkl resume` needs from a journal."""

    start: dict[str, Any]
    record: RunRecord
    epoch: int
    next_seq: int
    stopped: dict[str, Any] | None
    run_id: str
    documents: list[Message] = field(default_factory=list)


def read_journal(run_dir: Path) -> JournalState:
    """Rebuild a run's state from its journal.

    Raises:
        FileNotFoundError: no journal; ValueError: no `run.start` in it.
    """
    messages = read_log(Path(run_dir) / JOURNAL)
    starts = [m for m in messages if m.topic == "run.start"]
    if not starts:
        raise ValueError(f"{run_dir}: the journal has no run.start document")
    start = starts[0]
    events = [m.body for m in messages if m.topic == "run.event"]
    stops = [m.body for m in messages if m.topic == "run.stop"]
    return JournalState(
        start=start.body,
        record=RunRecord.from_events(events),
        epoch=start.epoch,
        next_seq=max(m.seq for m in messages) + 1,
        stopped=stops[-1] if stops else None,
        run_id=str(start.body.get("run_id", "")),
        documents=messages,
    )
