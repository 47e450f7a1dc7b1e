"""End to end: `dkl run` on a built-in dataset, followed by `dkl view` in headless Chromium
and by `dkl watch --json` started mid-run.

Checks that the maps and the path update while the run goes on, that the pause button
pauses the run (the agent reports it) and resume continues it, and that the watcher
started late prints the complete run, identical to the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from pathlib import Path

import pytest

from dkl.bus import read_log

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PLAN = ROOT / "experiments" / "plasmon_peak.dkl"
CANVASES = "['survey','map-prediction','map-uncertainty','map-acquisition','curves','latency']"
SNAPSHOT = f"{CANVASES}.map(id => document.getElementById(id).toDataURL())"
MEASUREMENTS = 14


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dkl",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _line(stream: asyncio.StreamReader, pattern: str, timeout: float) -> re.Match[str]:
    """Read lines until one matches `pattern` (the process's readiness announcement)."""

    async def scan() -> re.Match[str]:
        while True:
            raw = await stream.readline()
            if not raw:
                raise RuntimeError(f"process ended before printing {pattern!r}")
            match = re.search(pattern, raw.decode(errors="replace"))
            if match:
                return match

    return await asyncio.wait_for(scan(), timeout)


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


async def _end(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> None:
    """Ctrl-C (clean shutdown of its children), then kill if it does not finish."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            proc.kill()
            await proc.wait()


@pytest.mark.slow
def test_dkl_run_seen_live_by_view_and_watch(chromium_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "plan.dkl"
    plan.write_text(PLAN.read_text().replace("stop after 40", f"stop after {MEASUREMENTS}"))
    run_dir = tmp_path / "run"

    async def main() -> list[dict]:
        run = await _start("run", str(plan), "--out", str(run_dir), "--speed", "0.05")
        procs = [run]
        drains: list[asyncio.Task[bytes]] = []
        try:
            found = await _line(run.stderr, r"--bus (\S+) --snapshot (\S+)", 180)
            bus, control = found.group(1), found.group(2)
            drains.append(asyncio.create_task(_drain(run.stderr)))
            view = await _start("view", "--bus", bus, "--control", control, "--port", "0")
            procs.append(view)
            url = (await _line(view.stdout, r"dashboard at (\S+)", 60)).group(1)
            drains.append(asyncio.create_task(_drain(view.stdout)))
            drains.append(asyncio.create_task(_drain(view.stderr)))
            async with chromium_page(url) as page:
                await page.wait_for("dklView.mapsVersion >= 1 && dklView.draws > 0", 180)
                events = await page.evaluate("dklView.events.filter(Boolean).length")
                before = await page.evaluate(SNAPSHOT)
                # the watcher joins mid-run
                watch = await _start(
                    "watch", "--bus", bus, "--snapshot", control, "--json", "--exit-after-run"
                )
                procs.append(watch)
                stdout = asyncio.create_task(_drain(watch.stdout))
                drains.append(asyncio.create_task(_drain(watch.stderr)))

                await page.wait_for(
                    f"dklView.events.filter(Boolean).length >= {events + 2} && "
                    "dklView.mapsVersion >= 2",
                    180,
                )
                after = await page.evaluate(SNAPSHOT)
                changed = dict(
                    zip(
                        json.loads(CANVASES.replace("'", '"')),
                        map(lambda pair: pair[0] != pair[1], zip(before, after, strict=True)),
                    )
                )
                assert changed["survey"] and changed["map-prediction"], changed

                await page.evaluate("document.getElementById('btn-pause').click()")
                await page.wait_for("document.getElementById('state').textContent === 'paused'", 60)
                await page.screenshot(ARTIFACTS / "e2e-paused.png")
                await page.evaluate("document.getElementById('btn-resume').click()")
                await page.wait_for(
                    "document.getElementById('state').textContent === 'success'", 300
                )
                await page.screenshot(ARTIFACTS / "e2e-finished.png")
            assert await asyncio.wait_for(run.wait(), 120) == 0
            assert await asyncio.wait_for(watch.wait(), 30) == 0
            return [json.loads(line) for line in (await stdout).decode().splitlines()]
        finally:
            for proc in reversed(procs):
                await _end(proc)
            for task in drains:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    printed = asyncio.run(asyncio.wait_for(main(), 600))
    journal = read_log(run_dir / "journal.log")
    assert [(r["topic"], r["seq"]) for r in printed] == [(m.topic, m.seq) for m in journal]
    actions = [m.body["action"] for m in journal if m.topic == "run.interruption"]
    assert actions[:2] == ["pause", "resume"]
    assert sum(m.topic == "run.event" for m in journal) == MEASUREMENTS
    assert (run_dir / "report.html").is_file()
