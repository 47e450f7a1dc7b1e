"""Put any object's whitelisted methods on the bus (ROUTER), with roles and idempotency.

The socket loop runs in one thread and answers pings at once; calls run one at a time
in a worker thread (instruments are not re-entrant), so a long `acquire` never makes the
server look dead. Replies are cached by idempotency key: a retried call runs once. The
caller's role comes from the authenticated key (ZAP User-Id), never from the request.
"""

from __future__ import annotations

import logging
import queue
import secrets
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

import zmq

from . import _rpc as P
from ._codec import Message, array_load, decode, encode
from ._errors import BusError, BusTimeout, MessageDecodeError
from ._net import bind, make_socket, quiet_thread_signals
from ._security import DOMAIN_RPC, LOCAL, ServerSecurity, start_authenticator

log = logging.getLogger(__name__)


class RpcServer:
    """Serve `methods` of `obj` at `endpoint`; see `serve` for the usual entry point.

    Args:
        roles: method -> roles allowed to call it (``"*"`` key: the default). None lets
            every authenticated peer call every method. Peers of an unsecured loopback
            server have the role ``local``, which may call everything.
        peer_timeout: seconds of silence after which a client counts as lost and
            `on_peer_lost(client_id)` is called (from the server thread).
        threaded: run calls in a worker thread so heartbeats are answered during long
            calls (instruments). False runs them in the socket thread: one thread hop
            less per call, for services whose methods return at once (control sockets).
    """

    def __init__(
        self,
        obj: Any,
        methods: Collection[str],
        endpoint: str = "tcp://127.0.0.1:0",
        *,
        roles: Mapping[str, Collection[str]] | None = None,
        security: ServerSecurity | None = None,
        insecure: bool = False,
        peer_timeout: float | None = None,
        on_peer_lost: Callable[[str], None] | None = None,
        cache_size: int = 1024,
        cache_bytes: int = 256 * 2**20,
        threaded: bool = True,
    ) -> None:
        missing = [m for m in methods if not callable(getattr(obj, m, None))]
        if missing:
            raise ValueError(f"{type(obj).__name__} has no callable {', '.join(missing)}")
        self._obj = obj
        self._methods = frozenset(methods)
        self._roles = {k: frozenset(v) for k, v in roles.items()} if roles is not None else None
        self._want = endpoint
        self._security = security
        self._insecure = insecure
        self._peer_timeout = peer_timeout
        self._on_peer_lost = on_peer_lost
        self._cache: OrderedDict[str, Message] = OrderedDict()
        self._threaded = threaded
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._cached_bytes: dict[str, int] = {}
        self._running: dict[str, list[tuple[bytes, str | None]]] = {}
        self._peers: dict[str, float] = {}
        self._jobs: queue.Queue[tuple | None] = queue.Queue()
        self._results: queue.Queue[tuple] = queue.Queue()
        self._tag = secrets.token_hex(6)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._ctx: zmq.Context | None = None
        self._threads: list[threading.Thread] = []
        self.endpoint = ""
        #: Counters: calls run, cache hits, role refusals, malformed frames dropped, pings,
        #: retries that joined a call still running.
        self.stats = {
            "calls": 0,
            "cached": 0,
            "forbidden": 0,
            "malformed": 0,
            "pings": 0,
            "joined": 0,
        }

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 5.0) -> RpcServer:
        """Bind and serve in background threads; returns once bound."""
        self._ctx = zmq.Context()
        self._auth = (
            start_authenticator(self._ctx, self._security.authorized_dir)
            if self._security
            else None
        )
        targets = [(self._loop, "dkl-rpc")]
        if self._threaded:
            targets.append((self._worker, "dkl-rpc-worker"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            err = self._error
            self.stop()
            if isinstance(err, BusError):
                raise err
            if err is not None:
                raise BusError(f"RPC server could not bind {self._want}: {err}") from err
            raise BusTimeout("RPC server did not start")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving (idempotent); pending calls are answered ``unavailable``."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        if self._error is None:
            ctl = ctx.socket(zmq.PAIR)
            ctl.linger = 2000  # a zero linger could drop the stop command unread
            ctl.connect(f"inproc://dkl-rpc-ctl-{self._tag}")
            ctl.send(b"stop")
            ctl.close()
        self._jobs.put(None)
        if self._auth is not None:
            self._auth.stop()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        ctx.term()

    def __enter__(self) -> RpcServer:
        return self.start() if self._ctx is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ socket loop

    def _loop(self) -> None:
        quiet_thread_signals()
        ctx = self._ctx
        assert ctx is not None
        socks: list[zmq.Socket] = []
        try:
            router = make_socket(ctx, zmq.ROUTER)
            socks.append(router)
            router.setsockopt(zmq.ROUTER_MANDATORY, 0)
            self.endpoint = bind(
                router,
                self._want,
                security=self._security,
                domain=DOMAIN_RPC,
                insecure=self._insecure,
            )
            done = make_socket(ctx, zmq.PULL)
            socks.append(done)
            done.bind(f"inproc://dkl-rpc-done-{self._tag}")
            ctl = make_socket(ctx, zmq.PAIR)
            socks.append(ctl)
            ctl.bind(f"inproc://dkl-rpc-ctl-{self._tag}")
        except BaseException as err:
            for sock in socks:
                sock.close(linger=0)
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        for sock in (router, done, ctl):
            poller.register(sock, zmq.POLLIN)
        try:
            while True:
                wait = None if self._peer_timeout is None else self._peer_timeout * 250
                events = dict(poller.poll(wait))
                if ctl in events:
                    break
                if router in events:
                    self._on_request(router, router.recv_multipart(copy=False))
                if done in events:
                    done.recv()
                    self._finish(router, *self._results.get_nowait())
                self._check_peers()
        finally:
            for sock in socks:
                sock.close(linger=0)

    def _on_request(self, router: zmq.Socket, frames: list[zmq.Frame]) -> None:
        if len(frames) < 2:
            self.stats["malformed"] += 1
            return
        ident = frames[0].bytes
        try:
            msg = decode(frames[1:], P.RPC_LIMITS)
        except MessageDecodeError as err:
            self.stats["malformed"] += 1
            log.warning("dropped malformed RPC frames: %s", err)
            return
        body = msg.body
        client = body.get("client")
        if isinstance(client, str) and self._peer_timeout is not None:
            self._peers[client] = time.monotonic()
        if msg.topic == P.PING:
            self.stats["pings"] += 1
            self._send(router, ident, Message(P.PONG, {}, time=time.time(), cid=msg.cid))
            return
        if msg.topic != P.CALL:
            self.stats["malformed"] += 1
            return
        role = self._role(frames[1])
        method, key = body.get("method"), body.get("key")
        args, kwargs = body.get("args", []), body.get("kwargs", {})
        if (
            not isinstance(method, str)
            or not isinstance(args, list)
            or not isinstance(kwargs, dict)
        ):
            self._send(router, ident, P.reply_error(msg.cid, P.BAD_REQUEST, "malformed call"))
            return
        if method not in self._methods:
            self._send(
                router,
                ident,
                P.reply_error(msg.cid, P.UNKNOWN_METHOD, f"no method {method!r} here"),
            )
            return
        if not self._allowed(role, method):
            self.stats["forbidden"] += 1
            self._send(
                router,
                ident,
                P.reply_error(
                    msg.cid, P.FORBIDDEN, f"role {role or 'unknown'!r} may not call {method!r}"
                ),
            )
            return
        key = key if isinstance(key, str) and key else None
        if key is not None and key in self._cache:
            self.stats["cached"] += 1
            self._send(router, ident, _with_cid(self._cache[key], msg.cid))
            return
        if key is not None and key in self._running:
            self.stats["joined"] += 1
            self._running[key].append((ident, msg.cid))
            return
        if key is not None:
            self._running[key] = []
        timeout = body.get("timeout")
        deadline = time.monotonic() + timeout if isinstance(timeout, (int, float)) else None
        if not self._threaded:
            self._finish(
                router, ident, msg.cid, key, self._run_call(method, args, kwargs, deadline, msg.cid)
            )
            return
        self._jobs.put((ident, msg.cid, key, method, args, kwargs, deadline))

    def _role(self, frame: zmq.Frame) -> str:
        if self._security is None:
            return LOCAL
        try:
            return frame.get("User-Id") or ""
        except zmq.ZMQError:
            return ""

    def _allowed(self, role: str, method: str) -> bool:
        if role == LOCAL and self._security is None:
            return True
        if self._roles is None:
            return bool(role)
        allowed = self._roles.get(method, self._roles.get("*", frozenset()))
        return role in allowed

    def _finish(
        self, router: zmq.Socket, ident: bytes, cid: str | None, key: str | None, reply: Message
    ) -> None:
        self._send(router, ident, _with_cid(reply, cid))
        if key is None:
            return
        for other_ident, other_cid in self._running.pop(key, []):
            self._send(router, other_ident, _with_cid(reply, other_cid))
        size = array_load(reply.body)[1]
        if size > self._cache_bytes // 4:
            return  # too big to keep; a retry of this call would run it again
        self._cache[key] = reply
        self._cached_bytes[key] = size
        while len(self._cache) > self._cache_size or sum(self._cached_bytes.values()) > (
            self._cache_bytes
        ):
            old, _ = self._cache.popitem(last=False)
            self._cached_bytes.pop(old, None)

    def _send(self, router: zmq.Socket, ident: bytes, reply: Message) -> None:
        try:
            frames = encode(reply)
        except TypeError as err:
            frames = encode(P.reply_error(reply.cid, P.INTERNAL, f"unencodable result: {err}"))
        try:
            router.send_multipart([ident, *frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("dropped a reply to a peer that is not reading")

    def _check_peers(self) -> None:
        if self._peer_timeout is None:
            return
        now = time.monotonic()
        for client, seen in list(self._peers.items()):
            if now - seen > self._peer_timeout:
                del self._peers[client]
                if self._on_peer_lost is not None:
                    try:
                        self._on_peer_lost(client)
                    except Exception:
                        log.exception("on_peer_lost callback failed")

    # ------------------------------------------------------------ worker

    def _worker(self) -> None:
        quiet_thread_signals()
        self._ready.wait()
        ctx = self._ctx
        if ctx is None or self._error is not None:
            return
        push = make_socket(ctx, zmq.PUSH)
        push.connect(f"inproc://dkl-rpc-done-{self._tag}")
        try:
            while (job := self._jobs.get()) is not None:
                ident, cid, key, method, args, kwargs, deadline = job
                reply = self._run_call(method, args, kwargs, deadline, cid)
                self._results.put((ident, cid, key, reply))
                push.send(b"")  # wake the socket loop
        finally:
            push.close(linger=0)

    def _run_call(
        self, method: str, args: list, kwargs: dict, deadline: float | None, cid: str | None
    ) -> Message:
        if deadline is not None and time.monotonic() > deadline:
            return P.reply_error(
                cid, P.DEADLINE_EXCEEDED, "deadline passed before the call ran", retryable=True
            )
        self.stats["calls"] += 1
        try:
            result = getattr(self._obj, method)(*args, **kwargs)
        except Exception as err:
            code, message, retryable = P.error_from_exception(err)
            return P.reply_error(cid, code, message, retryable)
        return P.reply_ok(cid, result)


def _with_cid(reply: Message, cid: str | None) -> Message:
    return Message(reply.topic, reply.body, time=reply.time, cid=cid)


def serve(
    obj: Any,
    methods: Collection[str],
    endpoint: str = "tcp://127.0.0.1:0",
    **options: Any,
) -> RpcServer:
    """Serve `methods` of `obj` from a background thread; returns the started server.

    Example:
        >>> server = serve(instrument, ["describe", "acquire"], roles={"*": {"agent"}})
        >>> RpcClient(server.endpoint).call("describe")
    """
    return RpcServer(obj, methods, endpoint, **options).start()


def run_server(
    obj: Any,
    methods: Collection[str],
    endpoint: str,
    *,
    announce: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    **options: Any,
) -> int:
    """Serve in this process until SIGINT/SIGTERM (or `stop` is set); exit status 0."""
    stop = stop or threading.Event()
    server = RpcServer(obj, methods, endpoint, **options).start()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        announce(f"serving {', '.join(sorted(server._methods))} at {server.endpoint}")
        while not stop.wait(0.1):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
