"""Fixtures: a real proxy on free loopback ports, shared per module to keep tests fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from dkl.bus import Proxy


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0") as running:
        yield running


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)
