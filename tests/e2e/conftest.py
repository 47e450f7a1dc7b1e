"""Fixtures for end-to-end tests: real processes on loopback, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dkl.agent import processes
from dkl.bus import Proxy


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """An in-process bus proxy on free loopback ports."""
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0") as p:
        yield p


@pytest.fixture
def children() -> Iterator[list[processes.Child]]:
    """Started child processes; all stopped (SIGTERM, then SIGKILL) after the test."""
    started: list[processes.Child] = []
    yield started
    for child in reversed(started):
        processes.stop(child, timeout=3.0)


class Launcher:
    """Starts the instrument and agent processes of a test; `children` cleans them up."""

    def __init__(self, children: list[processes.Child]) -> None:
        self.children = children

    def instrument(self, dataset: str = "builtin:plasmonic", bus: str | None = None) -> str:
        return start_instrument(self.children, dataset, bus)

    def agent(self, runs: str, instrument: str, bus: str | None = None) -> processes.Child:
        return start_agent(self.children, runs, instrument, bus)


@pytest.fixture
def launch(children: list[processes.Child]) -> Launcher:
    return Launcher(children)


def start_instrument(children: list[processes.Child], dataset: str = "builtin:plasmonic",
                     bus: str | None = None, *extra: str) -> str:
    args = ["instrument", "sim", dataset, "--speed", "0", "--bind", "tcp://127.0.0.1:0",
            "--deadman", "30", *extra]
    if bus:
        args += ["--bus", bus]
    child = processes.start("instrument", processes.dkl_command(*args), timeout=120)
    children.append(child)
    return child.endpoint


def start_agent(children: list[processes.Child], runs: str, instrument: str,
                bus: str | None = None) -> processes.Child:
    args = ["agent", "--control", "tcp://127.0.0.1:0", "--runs", runs,
            "--instrument", instrument]
    if bus:
        args += ["--bus", bus]
    child = processes.start("agent", processes.dkl_command(*args), timeout=180)
    children.append(child)
    return child
