"""The envelope and its codec: `topic | header | body | raw buffers`, msgpack only.

A `Message` is the unit every part of the system exchanges. Its body is a msgpack map
that may hold numpy arrays anywhere; on the wire each array becomes a tiny descriptor
(msgpack ext type 1: dtype, shape, order, buffer index) and its bytes travel as a
separate zero-copy frame. Decoding is strict and bounded (`Limits`): anything outside
the rules raises `MessageDecodeError`, which receive loops count and drop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import msgpack
import numpy as np
import zmq

from ._errors import MessageDecodeError

#: Schema version of the envelope header; bumped only for incompatible changes.
SCHEMA_VERSION = 1
_ARRAY_EXT = 1
_ZERO_COPY_FROM = 65536
_ALLOWED_KINDS = frozenset("biufcmMSU")  # no object, no void/structured dtypes


@dataclass(frozen=True)
class Limits:
    """Bounds enforced while decoding a message; generous for data, tight for metadata."""

    max_topic_bytes: int = 256
    max_header_bytes: int = 4096
    max_body_bytes: int = 16 * 2**20
    max_buffer_bytes: int = 256 * 2**20
    max_buffers: int = 64
    max_depth: int = 32
    max_ndim: int = 32
    max_batch: int = 4096


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Message:
    """One bus message: a topic, the header fields and a body map.

    Attributes:
        topic: dotted routing key, e.g. ``run.start`` (subscriptions match prefixes).
        body: msgpack map; numpy arrays may appear at any depth.
        kind: message kind (defaults to the topic).
        src: publisher id; `epoch` is random per publisher start; `seq` counts from 0
            per ``(src, epoch)``; `time` is wall time (s since the epoch); `cid` an
            optional correlation id; `v` the schema version.
    """

    topic: str
    body: dict[str, Any] = field(default_factory=dict)
    kind: str = ""
    src: str = ""
    epoch: int = 0
    seq: int = -1
    time: float = 0.0
    cid: str | None = None
    v: int = SCHEMA_VERSION

    @property
    def stream(self) -> tuple[str, int]:
        """The ``(src, epoch)`` pair that `seq` counts within."""
        return (self.src, self.epoch)

    def header(self) -> dict[str, Any]:
        """The header fields by name (on the wire they travel as a msgpack array)."""
        return {
            "v": self.v,
            "kind": self.kind or self.topic,
            "src": self.src,
            "epoch": self.epoch,
            "seq": self.seq,
            "time": self.time or time.time(),
            "cid": self.cid,
        }


# ---------------------------------------------------------------- body packing


_packers = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's reusable plain packer: building one per message costs more than packing."""
    try:
        return _packers.plain
    except AttributeError:
        _packers.plain = msgpack.Packer(use_bin_type=True)
        return _packers.plain


def pack_body(body: Any, buffers: list[Any]) -> bytes:
    """Pack a value into msgpack, moving numpy arrays into `buffers` (appended)."""
    try:  # fast path: only msgpack types (the common small event)
        return _packer().pack(body)
    except TypeError:
        pass  # arrays or numpy scalars somewhere: the packer has reset itself

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return _array_ext(obj, buffers)
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, (tuple, set, frozenset)):
            return list(obj)
        raise TypeError(f"cannot put a {type(obj).__name__} on the bus (msgpack types only)")

    return msgpack.packb(body, default=default, use_bin_type=True)


def _array_ext(arr: np.ndarray, buffers: list[Any]) -> msgpack.ExtType:
    if arr.dtype.kind not in _ALLOWED_KINDS or arr.dtype.hasobject:
        raise TypeError(f"arrays of dtype {arr.dtype} cannot travel on the bus")
    if arr.flags.c_contiguous:
        order, data = "C", arr
    elif arr.flags.f_contiguous:
        order, data = "F", arr.T  # same memory, C-contiguous view of the transpose
    else:
        order, data = "C", np.ascontiguousarray(arr)
    buffers.append(memoryview(data.reshape(-1).view(np.uint8)) if data.size else b"")
    desc = [arr.dtype.str, list(arr.shape), order, len(buffers) - 1]
    return msgpack.ExtType(_ARRAY_EXT, msgpack.packb(desc))


def unpack_body(
    data: Any, buffers: Sequence[Any], limits: Limits = DEFAULT_LIMITS, max_depth: int | None = None
) -> Any:
    """Unpack msgpack produced by `pack_body`, putting arrays back (read-only views)."""

    def ext_hook(code: int, payload: bytes) -> Any:
        if code != _ARRAY_EXT:
            raise MessageDecodeError(f"unknown msgpack ext type {code}")
        return _array_from(payload, buffers, limits)

    try:
        value = msgpack.unpackb(
            data,
            ext_hook=ext_hook,
            raw=False,
            strict_map_key=True,
        )
    except MessageDecodeError:
        raise
    except Exception as err:  # msgpack raises many types for bad input
        raise MessageDecodeError(f"body is not valid msgpack: {err}") from err
    _check_tree(value, limits.max_depth if max_depth is None else max_depth)
    return value


def _array_from(payload: bytes, buffers: Sequence[Any], limits: Limits) -> np.ndarray:
    try:
        dtype_str, shape, order, index = msgpack.unpackb(payload, raw=False)
        dtype = np.dtype(dtype_str)
    except Exception as err:
        raise MessageDecodeError(f"bad array descriptor: {err}") from err
    if dtype.kind not in _ALLOWED_KINDS or dtype.hasobject or dtype.fields is not None:
        raise MessageDecodeError(f"dtype {dtype_str!r} is not allowed on the bus")
    if order not in ("C", "F") or not isinstance(shape, list) or len(shape) > limits.max_ndim:
        raise MessageDecodeError("bad array order or shape")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise MessageDecodeError("array shape must be non-negative integers")
    if not isinstance(index, int) or not 0 <= index < len(buffers):
        raise MessageDecodeError(f"array refers to missing buffer {index}")
    buf = buffers[index]
    nbytes = math.prod(shape) * dtype.itemsize
    if len(memoryview(buf)) != nbytes:
        raise MessageDecodeError(f"buffer {index} holds {len(buf)} bytes, shape needs {nbytes}")
    flat = np.frombuffer(buf, dtype=dtype) if nbytes else np.empty(0, dtype)
    arr = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _check_tree(value: Any, max_depth: int) -> None:
    """Reject nesting deeper than `max_depth` and non-string map keys."""
    if type(value) is dict and max_depth > 1:  # fast path: a flat map (most events)
        for key, item in value.items():
            if type(key) is not str:
                raise MessageDecodeError(f"map key {key!r} is not a string")
            if type(item) in _CONTAINERS:
                break
        else:
            return
    elif type(value) is list and max_depth > 1 and _flat_maps(value):  # a batch of events
        return
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth >= max_depth:
            raise MessageDecodeError(f"body nested deeper than {max_depth}")
        if type(node) is dict:
            for key, item in node.items():
                if type(key) is not str:
                    raise MessageDecodeError(f"map key {key!r} is not a string")
                if type(item) in _CONTAINERS:
                    stack.append((item, depth + 1))
        elif type(node) is list:
            stack.extend((item, depth + 1) for item in node if type(item) in _CONTAINERS)


_CONTAINERS = (dict, list)


def _flat_maps(items: list[Any]) -> bool:
    """Whether `items` are maps with string keys and no containers as values (loops in C)."""
    if set(map(type, items)) != {dict}:
        return False
    try:
        "".join(chain.from_iterable(items))  # TypeError unless every key is a str
    except TypeError:
        return False
    values = set(map(type, chain.from_iterable(map(dict.values, items))))
    return dict not in values and list not in values


def array_load(value: Any) -> tuple[int, int]:
    """(number of arrays, bytes in arrays) anywhere in `value`: for paging and budgets."""
    count = nbytes = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, np.ndarray):
            count += 1
            nbytes += node.nbytes
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return count, nbytes


# ---------------------------------------------------------------- envelope


def encode(msg: Message) -> list[Any]:
    """Frames for `msg`: topic, header, body, then one raw buffer per array."""
    buffers: list[Any] = []
    try:
        body = pack_body(msg.body, buffers)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"message {msg.topic!r}: {err}") from err
    return [msg.topic.encode(), _packer().pack(_header_fields(msg)), body, *buffers]


def encode_batch(first: Message, bodies: Sequence[Any]) -> list[Any]:
    """Frames carrying ``len(bodies)`` consecutive messages as one: `first`'s header with
    the count appended (field 8, ``n``), and the array of the bodies as body.

    The messages share `first`'s topic, kind, stream, time and cid; receivers expand
    them with seq ``first.seq .. first.seq + n - 1``. Arrays share the raw buffers.
    """
    buffers: list[Any] = []
    try:
        body = pack_body(bodies if type(bodies) is list else list(bodies), buffers)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"message {first.topic!r}: {err}") from err
    header = _header_fields(first)
    header.append(len(bodies))
    return [first.topic.encode(), _packer().pack(header), body, *buffers]


def messages(first: Message, bodies: Sequence[Any]) -> list[Message]:
    """The messages a batch stands for: `first`'s fields, one per body, seq counting up."""
    n = len(bodies)
    return list(
        map(
            Message,
            repeat(first.topic, n),
            bodies,
            repeat(first.kind, n),
            repeat(first.src, n),
            repeat(first.epoch, n),
            range(first.seq, first.seq + n),
            repeat(first.time, n),
            repeat(first.cid, n),
            repeat(first.v, n),
        )
    )


def _header_fields(msg: Message) -> list[Any]:
    return [
        SCHEMA_VERSION,
        msg.kind or msg.topic,
        msg.src,
        msg.epoch,
        msg.seq,
        float(msg.time or time.time()),
        msg.cid,
    ]


def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Message:
    """Rebuild one `Message` from frames (bytes or `zmq.Frame`), strictly and bounded.

    Raises:
        MessageDecodeError: if any rule of the envelope is broken, or the frames carry a
            batch (use `decode_many`).
    """
    msgs = decode_many(frames, limits)
    if len(msgs) != 1:
        raise MessageDecodeError(f"a batch of {len(msgs)} messages where one was expected")
    return msgs[0]


def decode_many(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> list[Message]:
    """The messages in frames: one for a plain envelope, ``n`` for a batch.

    Raises:
        MessageDecodeError: if any rule of the envelope is broken.
    """
    if len(frames) < 3:
        raise MessageDecodeError(f"{len(frames)} frames; an envelope needs at least 3")
    if len(frames) - 3 > limits.max_buffers:
        raise MessageDecodeError(f"{len(frames) - 3} buffers exceed {limits.max_buffers}")
    topic_b, header_b, body_b, *buffers = frames
    if type(body_b) is not bytes or type(header_b) is not bytes or type(topic_b) is not bytes:
        topic_b, header_b, body_b = _view(topic_b), _view(header_b), _view(body_b)
    if buffers:
        buffers = [_view(f) for f in buffers]
    if len(topic_b) > limits.max_topic_bytes:
        raise MessageDecodeError("topic too long")
    if len(header_b) > limits.max_header_bytes:
        raise MessageDecodeError("header too large")
    if len(body_b) > limits.max_body_bytes:
        raise MessageDecodeError("body too large")
    if buffers and max(len(b) for b in buffers) > limits.max_buffer_bytes:
        raise MessageDecodeError("raw buffer too large")
    try:
        topic = topic_b.decode() if type(topic_b) is bytes else bytes(topic_b).decode()
    except UnicodeDecodeError as err:
        raise MessageDecodeError("topic is not UTF-8") from err
    header = _unpack_header(header_b)
    v, kind, src, epoch, seq, stamp, cid = _check_header(header)
    count = header[7] if len(header) > 7 else None
    if count is not None and (type(count) is not int or not 1 <= count <= limits.max_batch):
        raise MessageDecodeError(f"batch count must be an integer in 1..{limits.max_batch}")
    # the tree check of a batch starts one level down, at the bodies
    depth = limits.max_depth + (count is not None)
    body = unpack_body(body_b, buffers, limits, depth) if buffers else _unpack_plain(body_b, depth)
    if count is None:
        if type(body) is not dict:
            raise MessageDecodeError("body must be a map")
        return [Message(topic, body, kind, src, epoch, seq, stamp, cid, v)]
    if type(body) is not list or len(body) != count or set(map(type, body)) != {dict}:
        raise MessageDecodeError(f"a batch body must be an array of {count} maps")
    return messages(Message(topic, {}, kind, src, epoch, seq, stamp, cid, v), body)


def _unpack_plain(data: Any, max_depth: int) -> Any:
    """`unpack_body` for bodies without raw buffers (the common small event)."""
    try:
        value = msgpack.unpackb(data, ext_hook=_no_buffers, raw=False, strict_map_key=True)
    except MessageDecodeError:
        raise
    except Exception as err:
        raise MessageDecodeError(f"body is not valid msgpack: {err}") from err
    _check_tree(value, max_depth)
    return value


def _no_buffers(code: int, payload: bytes) -> Any:
    if code != _ARRAY_EXT:
        raise MessageDecodeError(f"unknown msgpack ext type {code}")
    raise MessageDecodeError("array refers to missing buffer")


_HEADER_FIELDS = ("v", "kind", "src", "epoch", "seq", "time", "cid")


def _unpack_header(data: Any) -> list[Any]:
    try:
        header = msgpack.unpackb(data, raw=False)
    except Exception as err:
        raise MessageDecodeError(f"header is not valid msgpack: {err}") from err
    if type(header) is not list:
        raise MessageDecodeError("header must be an array")
    return header


def _check_header(header: list[Any]) -> tuple[int, str, str, int, int, float, str | None]:
    """Header array ``[v, kind, src, epoch, seq, time, cid, n?, ...]``; later fields ignored."""
    if len(header) < 7:
        raise MessageDecodeError("header must be an array of at least 7 fields")
    v, kind, src, epoch, seq, stamp, cid = header[:7]
    if type(v) is not int or type(kind) is not str or type(src) is not str:
        raise MessageDecodeError("header field v, kind or src of the wrong type")
    if type(epoch) is not int or type(seq) is not int:
        raise MessageDecodeError("header field epoch or seq of the wrong type")
    if type(stamp) is not float and type(stamp) is not int:
        raise MessageDecodeError("header field time of the wrong type")
    if cid is not None and type(cid) is not str:
        raise MessageDecodeError("header field cid of the wrong type")
    if v > SCHEMA_VERSION:
        raise MessageDecodeError(f"schema version {v} is newer than {SCHEMA_VERSION}")
    return v, kind, src, epoch, seq, float(stamp), cid


def _view(frame: Any) -> Any:
    if type(frame) is bytes:
        return frame
    if isinstance(frame, zmq.Frame):
        # Frame.buffer (zero-copy) costs microseconds; copying small frames is cheaper
        return frame.buffer if len(frame) >= _ZERO_COPY_FROM else frame.bytes
    return frame


def message_to_dict(msg: Message) -> dict[str, Any]:
    """A plain map (arrays kept) for carrying messages inside other messages (snapshots)."""
    return {"topic": msg.topic, "header": msg.header(), "body": msg.body}


def message_from_dict(data: Any) -> Message:
    """Inverse of `message_to_dict`, validating like `decode`."""
    if not isinstance(data, dict) or not isinstance(data.get("topic"), str):
        raise MessageDecodeError("embedded message must be a map with a topic")
    body = data.get("body")
    if not isinstance(body, dict):
        raise MessageDecodeError("embedded message body must be a map")
    fields = data.get("header")
    if not isinstance(fields, dict):
        raise MessageDecodeError("embedded message header must be a map")
    v, kind, src, epoch, seq, stamp, cid = _check_header([fields.get(k) for k in _HEADER_FIELDS])
    return Message(data["topic"], body, kind, src, epoch, seq, stamp, cid, v)
