"""MessageLog: durable append, read since seq, torn tails tolerated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dkl.bus import MessageDecodeError, MessageLog, Sequencer, read_log


def _write(path: Path, n: int) -> list:
    seq = Sequencer("agent", epoch=5)
    with MessageLog(path) as log:
        msgs = [seq.stamp("run.event", {"i": i, "a": np.full(3, i)}) for i in range(n)]
        for msg in msgs:
            log.append(msg)
    return msgs


def test_append_and_read_since(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    _write(path, 10)
    got = read_log(path)
    assert [m.seq for m in got] == list(range(10))
    np.testing.assert_array_equal(got[7].body["a"], np.full(3, 7))
    log = MessageLog(path)
    assert [m.seq for m in log.read(since_seq=6)] == [6, 7, 8, 9]
    assert list(log.read(0, src="other")) == []
    log.close()


def test_torn_last_record_is_ignored_and_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    _write(path, 5)
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # crash in the middle of the last record
    assert [m.seq for m in read_log(path)] == [0, 1, 2, 3]
    with MessageLog(path) as log:  # reopening trims the torn tail, appends stay readable
        log.append(Sequencer("agent", epoch=5, first_seq=4).stamp("run.stop", {}))
    assert [m.seq for m in read_log(path)] == [0, 1, 2, 3, 4]


def test_corruption_before_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    _write(path, 5)
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MessageDecodeError, match="corrupt"):
        read_log(path)
    with pytest.raises(MessageDecodeError, match="corrupt"):
        MessageLog(path)
