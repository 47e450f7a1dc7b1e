"""An append-only file of encoded messages: the run journal and any snapshot source.

Record layout: ``u32 length | u32 crc32 | payload`` where the payload is a msgpack
array of the message's frames. Each append is flushed and fsync'd before it returns, so
a message that was published was on disk first. Reading stops quietly at a torn or
corrupt last record (a crash mid-write); corruption before the end is an error.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgpack

from ._codec import DEFAULT_LIMITS, Limits, Message, decode, encode
from ._errors import MessageDecodeError

_HEAD = struct.Struct("<II")
_MAX_RECORD = 512 * 2**20


class MessageLog:
    """Append-only, fsync'd message file with a `read(since_seq)` iterator.

    Example:
        >>> log = MessageLog(run_dir / "journal.log")
        >>> log.append(msg)
        >>> [m.seq for m in log.read(since_seq=10)]
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._trim_torn_tail()

    def _trim_torn_tail(self) -> None:
        """Cut a record left half-written by a crash so appends stay readable."""
        good, torn = _scan_good_length(self.path)
        if good < self.path.stat().st_size:
            if not torn:
                self._file.close()
                raise MessageDecodeError(f"{self.path}: corrupt record at byte {good}")
            self._file.truncate(good)
            self._file.flush()
            os.fsync(self._file.fileno())

    def append(self, msg: Message) -> None:
        """Write `msg` durably (flush + fsync) before returning."""
        self.extend([msg])

    def extend(self, msgs: list[Message]) -> None:
        """Write `msgs`, one record each, durably with a single flush + fsync."""
        records = []
        for msg in msgs:
            payload = msgpack.packb([bytes(f) for f in encode(msg)], use_bin_type=True)
            records.append(_HEAD.pack(len(payload), zlib.crc32(payload)) + payload)
        with self._lock:
            self._file.write(b"".join(records))
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def read(
        self, since_seq: int = 0, *, src: str | None = None, epoch: int | None = None
    ) -> Iterator[Message]:
        """Messages with ``seq >= since_seq`` (optionally of one src/epoch), in file order."""
        for msg in iter_log(self.path):
            if msg.seq < since_seq:
                continue
            if (src is not None and msg.src != src) or (epoch is not None and msg.epoch != epoch):
                continue
            yield msg

    def since(self, since_seq: int) -> Iterator[Message]:
        """Snapshot-source form of `read` (see `SnapshotServer`)."""
        return self.read(since_seq)

    def close(self) -> None:
        """Close the file; further appends raise `ValueError`."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> MessageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_log(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Iterator[Message]:
    """Iterate the messages of a log file, tolerating a torn last record.

    Raises:
        MessageDecodeError: a record before the last one is corrupt.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        while True:
            start = fh.tell()
            head = fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return
            length, crc = _HEAD.unpack(head)
            payload = fh.read(length) if length <= _MAX_RECORD else b""
            if len(payload) < length or zlib.crc32(payload) != crc:
                if start + _HEAD.size + length >= size:
                    return  # torn tail
                raise MessageDecodeError(f"{path}: corrupt record at byte {start}")
            try:
                frames = msgpack.unpackb(payload, raw=False)
                yield decode(frames, limits)
            except MessageDecodeError as err:
                raise MessageDecodeError(f"{path}: bad record at byte {start}: {err}") from err
            except (ValueError, TypeError) as err:
                raise MessageDecodeError(f"{path}: bad record at byte {start}: {err}") from err


def read_log(path: str | os.PathLike[str]) -> list[Message]:
    """All messages of a run journal (or any `MessageLog` file), in order."""
    return list(iter_log(path))


def _scan_good_length(path: Path) -> tuple[int, bool]:
    """Bytes of intact records, and whether what follows is only a torn last record."""
    good = 0
    size = path.stat().st_size
    with open(path, "rb") as fh:
        while True:
            head = fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                return good, True
            length, crc = _HEAD.unpack(head)
            payload = fh.read(length) if length <= _MAX_RECORD else b""
            if len(payload) < length or zlib.crc32(payload) != crc:
                return good, good + _HEAD.size + length >= size
            good += _HEAD.size + length
