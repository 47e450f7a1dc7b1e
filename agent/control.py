"""Commands from operators to a running experiment, delivered at safe points.

The control socket (daemon) and Ctrl-C (`dkl run`) put commands here; the loop takes them
at step boundaries. Only `pause --now` acts at once: it blanks the beam through its own
callback and marks the step in flight as interrupted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("pause", "resume", "stop", "abort", "measure", "exclude", "set")


@dataclass
class Command:
    action: str
    who: str = "operator"
    reason: str = ""
    args: dict[str, Any] = field(default_factory=dict)


class Control:
    """A thread-safe mailbox plus the one immediate action (`pause --now`)."""

    def __init__(self, blank_now: Callable[[], None] | None = None) -> None:
        self._queue: queue.Queue[Command] = queue.Queue()
        self._blank_now = blank_now
        self.interrupted = threading.Event()

    def send(self, command: Command) -> None:
        if command.action not in ACTIONS:
            raise ValueError(f"unknown action {command.action!r}; one of {', '.join(ACTIONS)}")
        if command.action == "pause" and command.args.get("now"):
            self.interrupted.set()
            if self._blank_now is not None:
                self._blank_now()
        self._queue.put(command)

    def take(self, timeout: float | None = None) -> Command | None:
        """The next command; waits up to `timeout` seconds (None: don't wait)."""
        try:
            if timeout is None:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
