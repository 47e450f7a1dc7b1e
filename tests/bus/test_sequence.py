"""SequenceTracker: in-order delivery, duplicates, gaps, give-up."""

from __future__ import annotations

from dkl.bus import Message, SequenceTracker


def m(seq: int, src: str = "a", epoch: int = 1) -> Message:
    return Message("t", {"seq": seq}, src=src, epoch=epoch, seq=seq)


def test_reorder_and_duplicates() -> None:
    tr = SequenceTracker()
    out = []
    for seq in [0, 2, 1, 1, 3, 0, 5, 4]:
        out += tr.offer(m(seq))
    assert [x.seq for x in out] == [0, 1, 2, 3, 4, 5]
    assert tr.stats.duplicates == 2
    assert [(g.first, g.last, g.closed, g.lost) for g in tr.stats.gaps] == [
        (1, 1, True, 0),
        (4, 4, True, 0),
    ]


def test_give_up_counts_lost() -> None:
    tr = SequenceTracker()
    tr.offer(m(0))
    assert tr.offer(m(4)) == []
    assert tr.holes() == [(("a", 1), 1, 3)]
    assert [x.seq for x in tr.give_up(("a", 1))] == [4]
    assert tr.stats.lost == 3 and tr.stats.gaps[0].lost == 3
    assert tr.stats.gaps[0].closed


def test_streams_are_independent_and_epochs_restart() -> None:
    tr = SequenceTracker()
    assert [x.seq for x in tr.offer(m(0, "a"))] == [0]
    assert [x.seq for x in tr.offer(m(0, "b"))] == [0]
    assert [x.seq for x in tr.offer(m(0, "a", epoch=2))] == [0]
    assert tr.stats.gaps == [] and tr.stats.duplicates == 0
