"""Socket plumbing shared by every bus component: LINGER, HWM, binds with free ports."""

from __future__ import annotations

import signal
from typing import Any

import zmq

from ._security import ServerSecurity, check_bind, secure_server

#: Milliseconds a closing socket may keep unsent messages (every socket gets it).
LINGER_MS = 200


def make_socket(ctx: zmq.Context, kind: int, *, hwm: int | None = None) -> zmq.Socket:
    """A socket with LINGER set (so no process hangs on exit) and optional HWM."""
    sock = ctx.socket(kind)
    sock.linger = LINGER_MS
    if hwm is not None:
        sock.sndhwm = hwm
        sock.rcvhwm = hwm
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)  # exponential reconnect backoff
    return sock


def bind(
    sock: zmq.Socket,
    endpoint: str,
    *,
    security: ServerSecurity | None = None,
    domain: str = "",
    insecure: bool = False,
) -> str:
    """Bind after the security check; ``:0`` means a free port. Returns the real endpoint."""
    check_bind(endpoint, security, insecure)
    secure_server(sock, security, domain)
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        endpoint = endpoint[:-2] + ":*"
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


_MORE = int(zmq.SNDMORE)
_ZERO_COPY_FROM = 65536  # below this, copying is cheaper than tracking a zero-copy frame


def send_frames(sock: zmq.Socket, frames: list, flags: int = 0) -> None:
    """Send a multipart message: small frames copied, large ones zero-copy."""
    last = len(frames) - 1
    more = int(flags) | _MORE
    for i, frame in enumerate(frames):
        sock.send(frame, more if i < last else int(flags), copy=len(frame) < _ZERO_COPY_FROM)


_ENVELOPE_FRAMES = 3  # topic, header, body: copied; raw array buffers after them are not


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[Any]:
    """Receive one multipart message: the envelope frames as bytes, the rest zero-copy.

    The envelope's topic, header and body are small: bytes are cheaper to decode than
    `zmq.Frame` views. Reading `Frame.more` costs far less than ``getsockopt(RCVMORE)``.
    """
    frame = sock.recv(flags, copy=False)
    frames: list[Any] = [frame.bytes]
    while frame.more:
        frame = sock.recv(0, copy=False)
        frames.append(frame.bytes if len(frames) < _ENVELOPE_FRAMES else frame)
    return frames


def quiet_thread_signals() -> None:
    """Block SIGINT/SIGTERM in the calling (worker) thread.

    The OS then delivers them to the main thread, where Python handles them, instead of
    interrupting a blocking libzmq call in this thread.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
