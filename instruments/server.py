"""Put any `Instrument` on the bus: its methods as RPC, its state as published messages.

Written once for every instrument (the simulator, a real microscope's adapter): the bus
RPC server runs the protocol's methods one at a time with deadlines, idempotency keys
and structured errors; a publisher thread sends `instrument.heartbeat` at a steady rate
and `instrument.status` whenever the beam changes (`event`: "blank", "unblank",
"deadman", "died") or every `status_interval_s`. The dead-man's switch lives in the
instrument; here it is only announced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from dkl.bus import (
    AGENT,
    INSTRUMENT_ROLES,
    OPERATOR,
    VIEWER,
    ClientSecurity,
    Message,
    Publisher,
    RpcServer,
    ServerSecurity,
)
from dkl.instruments.protocols import Instrument, Status

log = logging.getLogger(__name__)

#: The protocol's methods, served to the agent.
METHODS = ("describe", "survey", "acquire", "blank", "unblank", "status", "heartbeat")
#: Served as well when the instrument has them (the simulator does).
OPTIONAL_METHODS = ("dose_map",)
#: Who may call what when the server is secured (an unsecured loopback server: anyone local).
ROLES = {**INSTRUMENT_ROLES, "dose_map": frozenset({AGENT, OPERATOR, VIEWER})}
#: Exit status of a server process whose instrument died (fault injection).
DIED_EXIT_STATUS = 70


class _DroppingRpcServer(RpcServer):
    """The bus RPC server, except that a `reply_dropped` error is never sent (a lost reply)."""

    def _finish(
        self, router: Any, ident: bytes, cid: str | None, key: str | None, reply: Message
    ) -> None:
        error = reply.body.get("error")
        if isinstance(error, dict) and error.get("code") == "reply_dropped":
            if key is not None:
                self._running.pop(key, None)
            return
        super()._finish(router, ident, cid, key, reply)


class InstrumentServer:
    """An instrument served at `bind`, publishing on the bus proxy at `bus` (optional).

    Use `serve_instrument` to build and start one. `endpoint` is the bound address
    (a free port when `bind` ends in `:0`).
    """

    def __init__(
        self,
        instrument: Instrument,
        bind: str = "tcp://127.0.0.1:0",
        bus: str | None = None,
        *,
        src: str = "instrument",
        heartbeat_interval_s: float = 1.0,
        status_interval_s: float = 5.0,
        bus_timeout_s: float = 5.0,
        security: ServerSecurity | None = None,
        bus_security: ClientSecurity | None = None,
    ) -> None:
        self.instrument = instrument
        methods = [
            *METHODS,
            *(m for m in OPTIONAL_METHODS if callable(getattr(instrument, m, None))),
        ]
        self._rpc = _DroppingRpcServer(instrument, methods, bind, roles=ROLES, security=security)
        self._bus_security = bus_security
        self._bus = bus
        self._src = src
        self._heartbeat_s = heartbeat_interval_s
        self._status_s = status_interval_s
        self._bus_timeout_s = bus_timeout_s
        self._events: queue.Queue[tuple[str, Status] | None] = queue.Queue()
        self._stop = threading.Event()
        self._bus_ready = threading.Event()
        self._bus_error: BaseException | None = None
        self._flushed = threading.Event()
        self._thread: threading.Thread | None = None
        self.endpoint = ""

    def start(self) -> InstrumentServer:
        """Bind, connect to the bus (waiting until the proxy has us) and start serving."""
        if self._bus is not None:
            self._thread = threading.Thread(
                target=self._publish_loop, name="dkl-instrument-pub", daemon=True
            )
            self._thread.start()
            if not self._bus_ready.wait(self._bus_timeout_s + 1.0) or self._bus_error:
                self._stop.set()
                raise RuntimeError(f"cannot publish on the bus at {self._bus}: {self._bus_error}")
            subscribe = getattr(self.instrument, "subscribe", None)
            if callable(subscribe):
                subscribe(self._on_event)
        self._rpc.start()
        self.endpoint = self._rpc.endpoint
        return self

    def stop(self) -> None:
        """Stop serving and publishing (idempotent)."""
        self._rpc.stop()
        self._stop.set()
        self._events.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> InstrumentServer:
        return self if self.endpoint else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def die(self) -> None:
        """End this process at once, as a crashing instrument would (after a last status)."""
        if self._thread is not None:
            if not callable(getattr(self.instrument, "subscribe", None)):
                self._events.put(("died", self._snapshot()))
            self._flushed.wait(timeout=2.0)  # the publisher sent "died" and closed
        os._exit(DIED_EXIT_STATUS)

    # --- publishing ---------------------------------------------------------------------

    def _on_event(self, event: str, status: Status) -> None:
        self._events.put((event, status))

    def _snapshot(self) -> dict[str, Any]:
        snapshot = getattr(self.instrument, "snapshot", None)
        return dict(snapshot()) if callable(snapshot) else {"time": time.time()}

    def _publish_loop(self) -> None:
        try:
            publisher = Publisher(
                self._bus or "", self._src, wait=self._bus_timeout_s, security=self._bus_security
            )
        except Exception as err:  # no proxy there: reported by start()
            self._bus_error = err
            self._bus_ready.set()
            return
        self._bus_ready.set()
        try:
            next_beat = time.monotonic()
            next_status = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    body = self._snapshot()
                    publisher.publish("instrument.heartbeat", _body("heartbeat", body))
                    next_beat = now + self._heartbeat_s
                if now >= next_status:
                    publisher.publish("instrument.status", _body("periodic", self._snapshot()))
                    next_status = now + self._status_s
                try:
                    item = self._events.get(timeout=max(0.0, min(next_beat, next_status) - now))
                except queue.Empty:
                    continue
                if item is None:
                    break
                publisher.publish("instrument.status", _body(*item))
                if item[0] == "died":
                    break  # closing below flushes the last message out of the socket
        finally:
            publisher.close()
            self._flushed.set()


def _body(event: str, status: Status | dict[str, Any]) -> dict[str, Any]:
    body = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(status).items()}
    body["event"] = event
    return body


def serve_instrument(
    instrument: Instrument,
    bind: str = "tcp://127.0.0.1:0",
    bus: str | None = None,
    **options: Any,
) -> InstrumentServer:
    """Serve `instrument` over bus RPC at `bind` and publish its state on the proxy `bus`.

    Args:
        instrument: anything implementing the `Instrument` protocol.
        bind: RPC endpoint; `tcp://127.0.0.1:0` picks a free port (see `.endpoint`).
        bus: the bus proxy's publisher (frontend) endpoint, or None for no publishing.
        options: `src`, `heartbeat_interval_s`, `status_interval_s`, `bus_timeout_s`,
            `security` (CURVE for the RPC socket; required off loopback), `bus_security`.

    Example:
        >>> server = serve_instrument(SimMicroscope(load_builtin("plasmonic")))
        >>> InstrumentClient(server.endpoint).describe()["modality"]
        'eels'
    """
    return InstrumentServer(instrument, bind, bus, **options).start()


def run_instrument_server(
    make_instrument: Callable[[Callable[[], None]], Instrument],
    bind: str,
    bus: str | None = None,
    *,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> int:
    """Serve in this process until SIGINT/SIGTERM or `stop`; print `READY <endpoint>` once bound.

    `make_instrument(on_die)` builds the instrument; `on_die` ends the process the way a
    crashing instrument would (used by fault injection).
    """
    stop = stop or threading.Event()
    holder: dict[str, InstrumentServer] = {}
    instrument = make_instrument(lambda: holder["server"].die())
    server = InstrumentServer(instrument, bind, bus, **options)
    holder["server"] = server
    server.start()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        (announce or _print_flush)(f"READY {server.endpoint}")
        while not stop.wait(1.0):  # a timed wait keeps signal handling prompt
            pass
    finally:
        server.stop()
        close = getattr(instrument, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_flush(line: str) -> None:
    print(line, flush=True)
