"""Request/reply protocol, shared by the server, the sync client and the asyncio client.

Every frame set is a normal envelope (`encode`/`decode`), so requests get the same strict
bounded decoding as events. Topics: ``rpc.call`` (body: method, args, kwargs, key,
timeout, client), ``rpc.reply`` (body: ok, result | error), ``rpc.ping``/``rpc.pong``.
The request id travels as the correlation id `cid`; the idempotency `key` is the same
for every retry of one logical call.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ._codec import Limits, Message
from ._errors import RemoteError

CALL, REPLY, PING, PONG = "rpc.call", "rpc.reply", "rpc.ping", "rpc.pong"

#: Limits for RPC frames: replies (snapshots, surveys) may carry many arrays.
RPC_LIMITS = Limits(max_buffers=4096, max_header_bytes=4096)

# Error codes answered by servers (documented in docs/bus.md).
BAD_REQUEST = "bad_request"  # malformed call (not a dict, missing method)
UNKNOWN_METHOD = "unknown_method"  # method not exported by this server
FORBIDDEN = "forbidden"  # the caller's role may not call this method
BAD_ARGUMENTS = "bad_arguments"  # arguments do not fit the method's signature
DEADLINE_EXCEEDED = "deadline_exceeded"  # the call's deadline passed before it ran
INTERNAL = "internal"  # the method raised an unexpected exception
UNAVAILABLE = "unavailable"  # server shutting down


def new_id() -> str:
    """A random id for requests, idempotency keys and clients."""
    return uuid.uuid4().hex


def call_message(
    method: str, args: tuple, kwargs: dict, key: str, timeout: float, client: str, cid: str
) -> Message:
    """The request envelope for one attempt of a call."""
    body = {
        "method": method,
        "args": list(args),
        "kwargs": kwargs,
        "key": key,
        "timeout": timeout,
        "client": client,
    }
    return Message(CALL, body, src=client, time=time.time(), cid=cid)


def ping_message(client: str) -> Message:
    return Message(PING, {"client": client}, src=client, time=time.time(), cid=new_id())


def reply_ok(cid: str | None, result: Any) -> Message:
    return Message(REPLY, {"ok": True, "result": result}, time=time.time(), cid=cid)


def reply_error(cid: str | None, code: str, message: str, retryable: bool = False) -> Message:
    error = {"code": code, "message": message, "retryable": retryable}
    return Message(REPLY, {"ok": False, "error": error}, time=time.time(), cid=cid)


def error_from_exception(err: BaseException) -> tuple[str, str, bool]:
    """Map an exception raised by a served method to ``(code, message, retryable)``.

    Exceptions carrying string `code` (e.g. `InstrumentError`, `RemoteError`) keep their
    code, message and `retryable`; a `TypeError` is reported as bad arguments; anything
    else is `internal`.
    """
    code = getattr(err, "code", None)
    if isinstance(code, str) and code:
        message = getattr(err, "message", None) or str(err)
        return code, str(message), bool(getattr(err, "retryable", False))
    if isinstance(err, TypeError):
        return BAD_ARGUMENTS, str(err), False
    return INTERNAL, f"{type(err).__name__}: {err}", False


def result_of(reply: Message) -> Any:
    """The result carried by a reply, or raise its `RemoteError`."""
    body = reply.body
    if body.get("ok") is True:
        return body.get("result")
    error = body.get("error")
    if not isinstance(error, dict):
        raise RemoteError(BAD_REQUEST, "malformed reply from server", False)
    raise RemoteError(
        str(error.get("code", INTERNAL)),
        str(error.get("message", "")),
        bool(error.get("retryable", False)),
    )
