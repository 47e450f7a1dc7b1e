"""The envelope codec: round trips, zero-copy arrays, strict bounded decoding."""

from __future__ import annotations

import contextlib
import random

import msgpack
import numpy as np
import pytest

from dkl.bus import Limits, Message, MessageDecodeError, decode, decode_many, encode, encode_batch

DTYPES = ["u1", "i2", "<i4", ">i8", "f2", "f4", ">f8", "c8", "c16", "?", "M8[ns]", "U3"]


def roundtrip(msg: Message, limits: Limits | None = None) -> Message:
    frames = [bytes(f) for f in encode(msg)]
    return decode(frames, limits) if limits else decode(frames)


def test_header_fields_survive() -> None:
    msg = Message(
        "run.start",
        {"run_id": "r1"},
        kind="run_start",
        src="agent",
        epoch=7,
        seq=41,
        time=123.5,
        cid="abc",
    )
    out = roundtrip(msg)
    assert (out.topic, out.kind, out.src, out.epoch, out.seq, out.time, out.cid, out.v) == (
        "run.start",
        "run_start",
        "agent",
        7,
        41,
        123.5,
        "abc",
        1,
    )
    assert out.body == {"run_id": "r1"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_nested_arrays_of_each_dtype(dtype: str) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 100, size=(3, 4, 5))
    arr = base.astype("M8[ns]") if dtype.startswith("M8") else base.astype(dtype)
    body = {"a": {"b": [1, {"c": arr}, arr[:, 1, :]]}, "d": [arr.T], "e": arr[::2, ::-1]}
    out = roundtrip(Message("t", body)).body
    for got, want in [
        (out["a"]["b"][1]["c"], arr),
        (out["a"]["b"][2], arr[:, 1, :]),
        (out["d"][0], arr.T),
        (out["e"], arr[::2, ::-1]),
    ]:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert out["a"]["b"][0] == 1


def test_fortran_order_kept_without_copy() -> None:
    arr = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    frames = encode(Message("t", {"x": arr}))
    assert len(frames) == 4
    assert np.shares_memory(np.frombuffer(frames[3], np.uint8), arr)  # zero-copy encode
    got = decode(frames).body["x"]
    assert got.flags.f_contiguous and not got.flags.writeable
    np.testing.assert_array_equal(got, arr)


def test_zero_size_and_scalars() -> None:
    body = {"empty": np.zeros((0, 3), "f4"), "zero_d": np.array(2.5), "np": np.int64(3)}
    out = roundtrip(Message("t", body)).body
    assert out["empty"].shape == (0, 3) and out["zero_d"].shape == () and out["np"] == 3


def test_plain_and_array_bodies_interleave() -> None:
    """The reused fast-path packer starts clean after a body it had to hand over."""
    plain = {"run_id": "r1", "xs": (1, 2), "f": np.float64(0.5)}
    for body in (plain, {"a": 1, "x": np.arange(3)}, plain, {"s": {1, 2}}, plain):
        out = roundtrip(Message("t", body)).body
        assert out.keys() == body.keys()
    assert roundtrip(Message("t", plain)).body == {"run_id": "r1", "xs": [1, 2], "f": 0.5}
    with pytest.raises(TypeError):
        encode(Message("t", {"x": 2**70}))
    assert roundtrip(Message("t", plain)).body["xs"] == [1, 2]


def test_object_and_structured_dtypes_refused() -> None:
    with pytest.raises(TypeError, match="dtype"):
        encode(Message("t", {"x": np.array([object()], dtype=object)}))
    with pytest.raises(TypeError, match="dtype"):
        encode(Message("t", {"x": np.zeros(2, dtype=[("a", "i4")])}))
    with pytest.raises(TypeError, match="msgpack types"):
        encode(Message("t", {"x": object()}))


def _frames(body: bytes, *buffers: bytes, header: object = None) -> list[bytes]:
    hdr = [1, "k", "s", 1, 0, 1.0, None]  # v, kind, src, epoch, seq, time, cid
    return [b"t", msgpack.packb(header if header is not None else hdr), body, *buffers]


def _ext(desc: list) -> msgpack.ExtType:
    return msgpack.ExtType(1, msgpack.packb(desc))


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        ([b"t", b"x"], "at least 3"),
        (_frames(msgpack.packb({1: 2})), "msgpack"),  # non-string key
        (_frames(msgpack.packb({b"k": 2}, use_bin_type=True)), "not a string"),  # flat map
        (_frames(msgpack.packb({"a": [{b"k": 2}]}, use_bin_type=True)), "not a string"),
        (_frames(msgpack.packb([1, 2])), "must be a map"),
        (_frames(b"\xc1"), "msgpack"),
        (_frames(msgpack.packb({"a": _ext(["|O8", [1], "C", 0])}), b"12345678"), "allowed"),
        (_frames(msgpack.packb({"a": _ext(["<f8", [2], "C", 0])}), b"1234"), "bytes"),
        (_frames(msgpack.packb({"a": _ext(["<f8", [1], "C", 3])}), b"12345678"), "missing"),
        (_frames(msgpack.packb({"a": _ext(["<f8", [-1], "C", 0])}), b""), "non-negative"),
        (_frames(msgpack.packb({"a": _ext(["<f8", [1], "X", 0])}), b"12345678"), "order"),
        (_frames(msgpack.packb({"a": msgpack.ExtType(9, b"")})), "ext type"),
        (_frames(msgpack.packb({}), header={"v": 1}), "array"),
        (_frames(msgpack.packb({}), header=[1, "k", "s", 1, True, 1.0, None]), "seq"),
        (_frames(msgpack.packb({}), header=[1, "k", "s", 1, 0, "now", None]), "time"),
        (_frames(msgpack.packb({}), header=[99, "k", "s", 1, 0, 1.0, None]), "newer"),
        ([b"\xff", *_frames(msgpack.packb({}))[1:]], "UTF-8"),
    ],
)
def test_malformed_messages_raise_decode_error(frames: list[bytes], why: str) -> None:
    with pytest.raises(MessageDecodeError, match=why):
        decode(frames)


def test_limits_depth_size_and_buffers() -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(MessageDecodeError, match="deeper"):
        roundtrip(Message("t", {"x": deep}))
    limits = Limits(max_body_bytes=100, max_buffers=2, max_buffer_bytes=64)
    with pytest.raises(MessageDecodeError, match="body too large"):
        roundtrip(Message("t", {"x": "y" * 200}), limits)
    with pytest.raises(MessageDecodeError, match="buffers exceed"):
        roundtrip(Message("t", {"x": [np.zeros(1)] * 3}), limits)
    with pytest.raises(MessageDecodeError, match="raw buffer too large"):
        roundtrip(Message("t", {"x": np.zeros(100)}), limits)


_ONE = Message("t", {"a": np.arange(5), "b": {"c": "d"}})
_BATCH = [{"i": i, "a": np.arange(3), "s": "x" * i} for i in range(8)]


@pytest.mark.parametrize(
    "good",
    [encode(_ONE), encode_batch(Message("t", {}, "t", "s", 1, 9), _BATCH)],
    ids=["message", "batch"],
)
def test_random_garbage_only_raises_decode_error(good: list) -> None:
    rng = random.Random(1)
    good = [bytes(f) for f in good]
    for _ in range(3000):
        frames = [bytearray(f) for f in good]
        for _ in range(rng.randint(1, 4)):
            frame = frames[rng.randrange(len(frames))]
            if frame and rng.random() < 0.5:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            else:
                del frame[rng.randrange(len(frame) + 1) :]
        with contextlib.suppress(MessageDecodeError):
            decode_many([bytes(f) for f in frames])
