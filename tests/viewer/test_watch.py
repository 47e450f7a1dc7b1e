"""`dkl watch`: pure rendering of run documents, and the print loop fed without sockets."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterable

from dkl.viewer.state import Document, Runs
from dkl.viewer.testing import fake_run_documents
from dkl.viewer.watch import WatchOutput, json_line, progress_bar, render_lines, watch_documents


async def _aiter(docs: Iterable[Document]) -> AsyncIterator[Document]:
    for doc in docs:
        yield doc


def _watch(docs: Iterable[Document], **kw: object) -> str:
    stream = io.StringIO()
    asyncio.run(watch_documents(_aiter(docs), WatchOutput(stream, **kw)))  # type: ignore[arg-type]
    return stream.getvalue()


def test_text_output_has_start_every_measurement_and_stop() -> None:
    docs = list(fake_run_documents(n=10))
    text = _watch(docs)
    lines = text.splitlines()
    assert lines[0].startswith("▶ run run-test started") and "up to 10 measurements" in lines[0]
    event_lines = [line for line in lines if line.lstrip().startswith("#")]
    assert len(event_lines) == 10
    assert "FAILED timeout" in event_lines[5]
    first = next(d.body for d in docs if d.topic == "run.event")
    assert f"({first['x']:>4}, {first['y']:>4})" in event_lines[0]
    assert "latency" in event_lines[0] and "[1/10]" in event_lines[0]
    assert lines[-1].startswith("■ run run-test success") and "idle 40%" in lines[-1]
    assert any("[" + "#" * 30 + "] 10/10 100%" in line for line in lines)


def test_duplicates_from_snapshot_overlap_print_once() -> None:
    docs = list(fake_run_documents(n=6))
    overlapping = docs[:10] + docs[5:]  # snapshot then live, overlapping
    assert _watch(overlapping) == _watch(docs)


def test_progress_bar_reports_elapsed_and_eta() -> None:
    runs = Runs()
    docs = list(fake_run_documents(n=10))
    start = docs[0]
    runs.apply(start)
    events = [d for d in docs if d.topic == "run.event"][:4]
    for doc in events:
        runs.apply(doc)
    run = runs.current
    assert run is not None
    bar = progress_bar(run, now=start.body["time"] + 8.0, width=10)
    # 4 of 10 in 8 s: 12 s to go
    assert bar == "[####......]  4/10  40%  elapsed 0:08  ETA 0:12"


def test_interruption_line_shows_action_and_state() -> None:
    runs = Runs()
    start = next(fake_run_documents(n=3))
    runs.apply(start)
    doc = Document(
        "run.interruption",
        {
            "run_id": "run-test",
            "action": "pause",
            "who": "operator",
            "reason": "look",
            "state": "paused",
        },
        seq=99,
    )
    run = runs.apply(doc)
    assert run is not None
    assert render_lines(run, doc) == ["⏸ pause by operator: look (now paused)"]


def test_json_lines_are_strict_json_with_arrays_summarised_or_full() -> None:
    docs = list(fake_run_documents(n=3, shape=(4, 5)))
    text = _watch(docs, json=True)
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["topic"] for r in records] == [d.topic for d in docs]
    assert [r["seq"] for r in records] == [d.seq for d in docs]
    maps = next(r for r in records if r["topic"] == "run.maps")
    assert maps["body"]["acquisition"]["shape"] == [4, 5]
    assert maps["body"]["acquisition"]["nan"] == 5
    full = json.loads(json_line(next(d for d in docs if d.topic == "run.maps"), arrays="full"))
    grid = full["body"]["acquisition"]
    assert len(grid) == 4 and len(grid[0]) == 5 and grid[0][0] is None
    failed = next(r for r in records if r["topic"] == "run.event" and r["body"]["failure"])
    assert failed["body"]["scalar"] is None


def test_terminal_bar_is_redrawn_while_nothing_arrives_and_cleared_at_the_end() -> None:
    docs = list(fake_run_documents(n=3))
    start_time = docs[0].body["time"]

    class Terminal(io.StringIO):
        redrawn: asyncio.Event

        def write(self, text: str) -> int:
            if text.startswith("\r\x1b[K[") and "elapsed 0:07" in text:
                self.redrawn.set()
            return super().write(text)

    async def source(term: Terminal) -> AsyncIterator[Document]:
        for doc in docs[:2]:
            yield doc
        await term.redrawn.wait()  # the bar ticked on its own, with the clock moving
        for doc in docs[2:]:
            yield doc

    async def main() -> str:
        term = Terminal()
        term.redrawn = asyncio.Event()
        clock = iter([start_time + 1.0] + [start_time + 7.0] * 1000)
        out = WatchOutput(term, tty=True, tick=0.01, clock=lambda: next(clock))
        await asyncio.wait_for(watch_documents(source(term), out), 10)
        return term.getvalue()

    text = asyncio.run(main())
    assert "elapsed 0:07" in text
    assert text.endswith("\n") and "■ run run-test success" in text.splitlines()[-1]
