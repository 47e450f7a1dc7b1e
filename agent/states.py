"""The run's state machine: which transitions are legal, and nothing else.

The loop and the control socket both change the state; doing it through one table means
an illegal request (resume a run that is not paused, pause a finished one) is refused with
a reason instead of corrupting the run.
"""

from __future__ import annotations

import threading
from enum import Enum


class RunState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    STOPPING = "stopping"
    ABORTING = "aborting"
    DONE = "done"
    FAILED = "failed"


#: Legal transitions: state -> states it may move to.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.IDLE: frozenset({RunState.RUNNING, RunState.ABORTING, RunState.FAILED}),
    RunState.RUNNING: frozenset({RunState.PAUSING, RunState.STOPPING, RunState.ABORTING,
                                 RunState.DONE, RunState.FAILED}),
    RunState.PAUSING: frozenset({RunState.PAUSED, RunState.RUNNING, RunState.STOPPING,
                                 RunState.ABORTING, RunState.FAILED, RunState.DONE}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.STOPPING, RunState.ABORTING,
                                RunState.FAILED}),
    RunState.STOPPING: frozenset({RunState.DONE, RunState.ABORTING, RunState.FAILED}),
    RunState.ABORTING: frozenset({RunState.DONE, RunState.FAILED}),
    RunState.DONE: frozenset(),
    RunState.FAILED: frozenset(),
}

TERMINAL = frozenset({RunState.DONE, RunState.FAILED})


class IllegalTransition(Exception):
    """A requested state change that the table does not allow."""


class StateMachine:
    """Thread-safe current state with a condition to wait on."""

    def __init__(self) -> None:
        self._state = RunState.IDLE
        self._cond = threading.Condition()
        self.history: list[tuple[RunState, RunState]] = []

    @property
    def state(self) -> RunState:
        with self._cond:
            return self._state

    def move(self, new: RunState) -> RunState:
        """Move to `new`; returns the previous state. Raises IllegalTransition."""
        with self._cond:
            old = self._state
            if new not in TRANSITIONS[old]:
                raise IllegalTransition(f"cannot go from {old.value} to {new.value}")
            self._state = new
            self.history.append((old, new))
            self._cond.notify_all()
            return old

    def wait_until(self, states: set[RunState], timeout: float) -> bool:
        """Block until the state is one of `states`; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state in states, timeout)

    def wait_change(self, timeout: float) -> RunState:
        """Block until the state changes (or the timeout passes); returns the state."""
        with self._cond:
            before = self._state
            self._cond.wait_for(lambda: self._state != before, timeout)
            return self._state
