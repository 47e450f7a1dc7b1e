"""Default method -> roles tables for the two services built on `serve`."""

from __future__ import annotations

from ._security import AGENT, INSTRUMENT, OPERATOR, VIEWER

#: The agent's control socket: viewers may only read; operators steer the run.
AGENT_CONTROL_ROLES: dict[str, frozenset[str]] = {
    "status": frozenset({VIEWER, OPERATOR, AGENT, INSTRUMENT}),
    "snapshot": frozenset({VIEWER, OPERATOR, AGENT, INSTRUMENT}),
    "submit": frozenset({OPERATOR}),
    "pause": frozenset({OPERATOR}),
    "resume": frozenset({OPERATOR}),
    "stop": frozenset({OPERATOR}),
    "abort": frozenset({OPERATOR}),
}

#: The instrument server: only the agent (and an operator) may drive the beam.
INSTRUMENT_ROLES: dict[str, frozenset[str]] = {
    "describe": frozenset({AGENT, OPERATOR, VIEWER}),
    "status": frozenset({AGENT, OPERATOR, VIEWER}),
    "heartbeat": frozenset({AGENT, OPERATOR}),
    "survey": frozenset({AGENT, OPERATOR}),
    "acquire": frozenset({AGENT, OPERATOR}),
    "blank": frozenset({AGENT, OPERATOR}),
    "unblank": frozenset({AGENT, OPERATOR}),
}
