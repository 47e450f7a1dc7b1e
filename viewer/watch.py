"""`dkl watch`: follow runs in the terminal, or as JSON lines for scripts.

Rendering is a pure function of the documents (`render_lines`, `progress_bar`,
`json_line`); `watch_documents` is the thin loop that prints them, and `run_watch` feeds
it from the bus (snapshot, then live) through `dkl.viewer.busio`.

JSON mode prints one object per document: `{"topic", "seq", "time", "body"}`. NaN and
infinities become `null`. Arrays are summarised by default as
`{"dtype", "shape", "min", "max", "mean", "nan"}` (a maps document would otherwise be
megabytes per line); `arrays="full"` prints them as nested lists instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from dkl.viewer.state import Document, Runs, RunState

BAR_WIDTH = 30


def _plain(value: Any, arrays: str) -> Any:
    """A JSON-ready copy of a document body."""
    if isinstance(value, np.ndarray):
        if arrays == "full":
            return _plain(value.tolist(), arrays)
        numeric = value.dtype.kind in "biuf" and value.size > 0
        finite = value[np.isfinite(value)] if numeric else np.array([])
        return {
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
            "nan": int(value.size - finite.size) if numeric else 0,
        }
    if isinstance(value, dict):
        return {str(k): _plain(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item(), arrays)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def json_line(doc: Document, arrays: str = "summary") -> str:
    """One document as one line of strict JSON (see the module docstring for arrays)."""
    record = {"topic": doc.topic, "seq": doc.seq, "time": doc.time, "body": doc.body}
    return json.dumps(_plain(record, arrays), allow_nan=False, separators=(",", ":"))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _num(value: Any, digits: int = 4) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:.{digits}g}" if math.isfinite(number) else "—"


def elapsed(run: RunState, now: float | None) -> float | None:
    """Seconds since the run started: the stop's figure once stopped, else up to `now`."""
    if run.stop is not None and run.stop.get("elapsed") is not None:
        return float(run.stop["elapsed"])
    started = (run.start or {}).get("time")
    current = now if now is not None else run.last_time
    if started is None or current is None:
        return None
    return max(0.0, float(current) - float(started))


def progress_bar(run: RunState, now: float | None = None, width: int = BAR_WIDTH) -> str:
    """`[#####.....]  12/200   6%  elapsed 0:12  ETA 2:56` for one run."""
    done, bound = run.num_events, run.max_measurements
    spent = elapsed(run, now)
    if not bound:
        return f"{done} measurements  elapsed {_duration(spent)}"
    fraction = min(1.0, done / bound)
    filled = round(fraction * width)
    eta: float | None = None
    if run.finished:
        eta = 0.0
    elif done and spent is not None:
        eta = spent / done * (bound - done)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(bound))}}/{bound} "
        f"{fraction:4.0%}  elapsed {_duration(spent)}  ETA {_duration(eta)}"
    )


def render_lines(run: RunState, doc: Document) -> list[str]:
    """The lines to print for `doc`, already applied to `run`."""
    body = doc.body
    if doc.topic == "run.start":
        survey = body.get("survey")
        shape = "×".join(str(n) for n in getattr(survey, "shape", ())) or "?"
        when = body.get("time")
        started = (
            dt.datetime.fromtimestamp(float(when), dt.timezone.utc).strftime("%H:%M:%S UTC")
            if when is not None
            else "?"
        )
        bound = body.get("max_measurements")
        sha = str(body.get("sha256", ""))[:12]
        return [
            f"▶ run {run.run_id} started {started}: up to {bound or '?'} measurements, "
            f"survey {shape} px, seed {body.get('seed', '?')}, plan {sha}"
        ]
    if doc.topic == "run.event":
        index = int(body.get("index", 0))
        where = f"({body.get('x', '?'):>4}, {body.get('y', '?'):>4})"
        failure = body.get("failure")
        if failure:
            what = f"FAILED {failure.get('code', '?')}: {failure.get('message', '')}"
        else:
            what = f"scalar {_num(body.get('scalar')):>10}"
        latency = (body.get("timings") or {}).get("step")
        count = f"{index + 1}/{run.max_measurements}" if run.max_measurements else f"{index + 1}"
        return [
            f"  #{index:<4} {where}  {what}  best {_num(body.get('best')):>10}  "
            f"latency {_num(latency, 3)} s  [{count}]"
        ]
    if doc.topic == "run.interruption":
        by = f" by {body['who']}" if body.get("who") else ""
        why = f": {body['reason']}" if body.get("reason") else ""
        return [f"⏸ {body.get('action', '?')}{by}{why} (now {run.state})"]
    if doc.topic == "run.stop":
        idle = body.get("idle_fraction")
        idle_text = f", microscope idle {float(idle):.0%}" if idle is not None else ""
        return [
            f"■ run {run.run_id} {body.get('exit_status', '?')}: {body.get('reason', '')} — "
            f"{body.get('num_events', run.num_events)} measurements in "
            f"{_duration(elapsed(run, None))}{idle_text}"
        ]
    return []  # model updates and maps are shown by the dashboard and in --json


def _milestone(run: RunState) -> bool:
    """Whether a non-terminal output prints the bar now: about every tenth of the run."""
    every = max(1, (run.max_measurements or 10) // 10)
    return run.num_events % every == 0


@dataclass
class WatchOutput:
    """Where and how `watch_documents` prints."""

    stream: TextIO
    json: bool = False
    arrays: str = "summary"
    tty: bool = False  #: redraw a live progress bar under the lines
    tick: float = 1.0  #: seconds between redraws of the bar while nothing arrives
    clock: Callable[[], float] = time.time


async def _with_ticks(
    docs: AsyncIterable[Document], tick: float | None
) -> AsyncIterator[Document | None]:
    """The documents of `docs`, plus None whenever `tick` seconds pass without one."""
    iterator = aiter(docs)
    pending: asyncio.Future[Document] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=tick)
            if not done:
                yield None
                continue
            try:
                doc = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield doc
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


async def watch_documents(docs: AsyncIterable[Document], out: WatchOutput) -> Runs:
    """Print every document of `docs` until it ends; returns the runs seen.

    On a terminal the progress bar of the running run is redrawn every `out.tick`
    seconds too, so elapsed time and ETA move while the agent is busy.
    """
    runs = Runs()
    shown: RunState | None = None  # the run whose bar is on the last terminal line
    tick = out.tick if out.tty and not out.json else None
    async for doc in _with_ticks(docs, tick):
        if doc is None:
            if shown is not None:
                out.stream.write("\r\x1b[K" + progress_bar(shown, out.clock()))
                out.stream.flush()
            continue
        if out.json:
            out.stream.write(json_line(doc, out.arrays) + "\n")
            out.stream.flush()
            runs.apply(doc)
            continue
        run = runs.apply(doc)
        if run is None:
            continue
        if shown is not None:
            out.stream.write("\r\x1b[K")
        for line in render_lines(run, doc):
            out.stream.write(line + "\n")
        shown = run if out.tty and not run.finished else None
        if shown is not None:
            out.stream.write(progress_bar(run, out.clock()))
        elif not out.tty and doc.topic == "run.event" and _milestone(run):
            out.stream.write("    " + progress_bar(run, doc.time) + "\n")
        out.stream.flush()
    return runs


def default_output(json_mode: bool, arrays: str = "summary") -> WatchOutput:
    """Print to stdout; a live progress bar only when stdout is a terminal."""
    return WatchOutput(sys.stdout, json=json_mode, arrays=arrays, tty=sys.stdout.isatty())
