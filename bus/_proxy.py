"""The bus proxy: publishers connect to an XSUB side, subscribers to an XPUB side.

Forwarding runs in libzmq (`zmq.proxy_steerable`) so the proxy costs almost nothing.
The proxy subscribes upstream to everything, so a publisher is ready as soon as the
proxy's subscription reaches it (see `Publisher.wait_ready`). A small responder thread
answers readiness pings: a subscriber subscribes to ``_bus.hello.<token>`` after its
real topics; when that subscription has passed the proxy's XPUB (hence all earlier ones
too) the responder publishes on that topic, and the subscriber knows nothing published
from now on can miss it. No sleeps anywhere.
"""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from ._errors import BusError, BusTimeout
from ._net import bind, make_socket, quiet_thread_signals
from ._security import DOMAIN_PUBLISH, DOMAIN_SUBSCRIBE, ServerSecurity, start_authenticator

HELLO_PREFIX = b"_bus.hello."
#: Default endpoints of `dkl bus`: publishers connect to the first, subscribers to the second.
DEFAULT_FRONTEND = "tcp://127.0.0.1:5555"
DEFAULT_BACKEND = "tcp://127.0.0.1:5556"


@dataclass(frozen=True)
class ProxyEndpoints:
    """Where publishers (`frontend`) and subscribers (`backend`) connect."""

    frontend: str
    backend: str


class Proxy:
    """An XSUB/XPUB proxy embeddable in a thread; `start()` returns once it is ready.

    Example:
        >>> with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0") as proxy:
        ...     pub = Publisher(proxy.endpoints.frontend, "agent")
    """

    def __init__(
        self,
        frontend: str = DEFAULT_FRONTEND,
        backend: str = DEFAULT_BACKEND,
        *,
        security: ServerSecurity | None = None,
        insecure: bool = False,
        max_message_bytes: int = 512 * 2**20,
        hwm: int = 10_000,
    ) -> None:
        self._want = (frontend, backend)
        self._security = security
        self._insecure = insecure
        self._maxmsg = max_message_bytes
        self._hwm = hwm
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._ctl_addr = f"inproc://dkl-proxy-ctl-{secrets.token_hex(6)}"
        self._hello_addr = f"inproc://dkl-proxy-hello-{secrets.token_hex(6)}"
        self._ctx: zmq.Context | None = None
        self.endpoints = ProxyEndpoints("", "")

    def start(self, timeout: float = 5.0) -> Proxy:
        """Bind and start forwarding; returns when the proxy answers readiness pings."""
        self._ctx = zmq.Context()
        self._auth = (
            start_authenticator(self._ctx, self._security.authorized_dir)
            if self._security
            else None
        )
        thread = threading.Thread(target=self._run, name="dkl-bus-proxy", daemon=True)
        self._threads.append(thread)
        thread.start()
        if not self._ready.wait(timeout) or self._error:
            self.stop()
            err = self._error
            if isinstance(err, BusError):
                raise err
            if err is not None:
                raise BusError(f"proxy could not start: {err}") from err
            raise BusTimeout("proxy did not become ready in time")
        return self

    def _run(self) -> None:
        quiet_thread_signals()
        ctx = self._ctx
        assert ctx is not None
        socks: list[zmq.Socket] = []
        try:
            xsub = make_socket(ctx, zmq.XSUB, hwm=self._hwm)
            socks.append(xsub)
            xsub.setsockopt(zmq.MAXMSGSIZE, self._maxmsg)
            xpub = make_socket(ctx, zmq.XPUB, hwm=self._hwm)
            socks.append(xpub)
            front = bind(
                xsub,
                self._want[0],
                security=self._security,
                domain=DOMAIN_PUBLISH,
                insecure=self._insecure,
            )
            back = bind(
                xpub,
                self._want[1],
                security=self._security,
                domain=DOMAIN_SUBSCRIBE,
                insecure=self._insecure,
            )
            xsub.bind(self._hello_addr)
            xsub.send(b"\x01")  # subscribe upstream to everything
            ctl = make_socket(ctx, zmq.PAIR)
            socks.append(ctl)
            ctl.bind(self._ctl_addr)
            self.endpoints = ProxyEndpoints(front, back)
            hello = threading.Thread(target=self._responder, name="dkl-bus-hello", daemon=True)
            self._threads.append(hello)
            hello.start()
        except BaseException as err:  # reported to start()
            for sock in socks:
                sock.close(linger=0)
            self._error = err
            self._ready.set()
            return
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctl)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, ctl):
                sock.close(linger=0)

    def _responder(self) -> None:
        """Answer ``_bus.hello.*`` subscriptions once they have crossed the proxy."""
        quiet_thread_signals()
        ctx = self._ctx
        assert ctx is not None
        sock = make_socket(ctx, zmq.XPUB)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.connect(self._hello_addr)
        try:
            while True:
                frame = sock.recv()
                if frame == b"\x01":
                    self._ready.set()
                elif frame[:1] == b"\x01" and frame[1:].startswith(HELLO_PREFIX):
                    sock.send(frame[1:])
        except zmq.ContextTerminated:
            pass
        finally:
            sock.close(linger=0)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop forwarding and release the ports (idempotent)."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        if self._error is None and self.endpoints.frontend:
            ctl = ctx.socket(zmq.PAIR)
            ctl.linger = 2000  # a zero linger could drop the stop command unread
            ctl.connect(self._ctl_addr)
            ctl.send(b"TERMINATE")
            ctl.close()
        if self._auth is not None:
            self._auth.stop()
        self._threads[0].join(min(timeout, 0.5))
        ctx.term()  # threads still blocked in libzmq get ContextTerminated and close up
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def __enter__(self) -> Proxy:
        return self.start() if self._ctx is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_proxy(
    frontend: str = DEFAULT_FRONTEND,
    backend: str = DEFAULT_BACKEND,
    *,
    security: ServerSecurity | None = None,
    insecure: bool = False,
    announce: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> int:
    """Run a proxy until SIGINT/SIGTERM (or `stop` is set); the body of ``dkl bus``."""
    stop = stop or threading.Event()
    proxy = Proxy(frontend, backend, security=security, insecure=insecure).start()
    asked: list[float] = []

    def on_signal(*_: object) -> None:
        asked.append(time.monotonic())
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        announce(f"publishers connect to  {proxy.endpoints.frontend}")
        announce(f"subscribers connect to {proxy.endpoints.backend}")
        sys.stdout.flush()
        while not stop.wait(0.1):
            pass
    finally:
        proxy.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if asked:
        announce(f"stopped {time.monotonic() - asked[0]:.3f} s after the signal")
    return 0
