"""The dashboard in a real headless Chromium: maps and path update live, pause is sent.

A fake agent publishes the synthetic run (`dkl.viewer.testing`) through the real bus;
the dashboard follows it (snapshot, then live) and sends pause over bus RPC to a fake
control endpoint that records it. The screenshot is kept under
test-artifacts/ at the repository root.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from dkl.viewer.busio import control_client, follow
from dkl.viewer.dashboard import Dashboard, serving
from dkl.viewer.state import Document
from dkl.viewer.testing import FakeAgent, fake_run_documents

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

CANVASES = "['survey','map-prediction','map-uncertainty','map-acquisition','curves','latency']"
SNAPSHOT = f"{CANVASES}.map(id => document.getElementById(id).toDataURL())"


@pytest.mark.slow
def test_dashboard_updates_live_and_pause_reaches_the_agent(
    chromium_page, agent: FakeAgent, control_address: str
) -> None:  # type: ignore[no-untyped-def]
    docs = list(fake_run_documents(n=8, shape=(30, 40), start_time=time.time()))
    start, steps, stop = docs[0], docs[1:-1], docs[-1]
    pause = Document(
        "run.interruption",
        {
            "run_id": "run-test",
            "action": "pause",
            "who": "operator",
            "reason": "",
            "state": "paused",
        },
    )

    async def main() -> None:
        async with control_client(control_address) as control:
            dashboard = Dashboard(control=control)
            feeder = asyncio.create_task(dashboard.consume(follow(agent.follow)))
            try:
                async with serving(dashboard) as url, chromium_page(url) as page:
                    await drive(page)
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder

    async def drive(page) -> None:  # type: ignore[no-untyped-def]
        agent.publish([start, *steps[:6]])  # two steps (event, model, maps each)
        await page.wait_for(
            "dklView.mapsVersion === 2 && dklView.events.length === 2 && dklView.draws > 0"
        )
        await page.wait_for(
            "document.getElementById('progress').textContent === '2 / 8 measurements'"
        )
        before = await page.evaluate(SNAPSHOT)
        draws = await page.evaluate("dklView.draws")

        agent.publish(steps[6:15])  # three more steps while the page is open
        await page.wait_for(f"dklView.mapsVersion === 5 && dklView.draws > {draws}")
        after = await page.evaluate(SNAPSHOT)
        changed = [a != b for a, b in zip(before, after, strict=True)]
        assert all(changed), f"canvases that did not change: {changed}"
        assert await page.evaluate("dklView.events.filter(Boolean).length") == 5

        assert await page.evaluate("document.getElementById('btn-pause').disabled") is False
        await page.evaluate("document.getElementById('btn-pause').click()")
        await page.wait_for(
            "document.getElementById('control-msg').textContent === 'pause accepted'"
        )
        assert agent.commands == ["pause"]

        agent.publish([pause])  # the agent reports the pause: the page shows it
        await page.wait_for("document.getElementById('state').textContent === 'paused'")
        await page.screenshot(ARTIFACTS / "dashboard.png")

        agent.publish([*steps[15:], stop])
        await page.wait_for("document.getElementById('state').textContent === 'success'")
        await page.wait_for("document.getElementById('btn-stop').disabled === true")
        await page.screenshot(ARTIFACTS / "dashboard-finished.png")

    asyncio.run(asyncio.wait_for(main(), 90))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_browser_opened_late_shows_the_whole_run(chromium_page) -> None:  # type: ignore[no-untyped-def]
    dashboard = Dashboard()
    for doc in fake_run_documents(n=6, shape=(20, 20)):
        dashboard.publish(doc)

    async def main() -> None:
        async with serving(dashboard) as url, chromium_page(url) as page:
            await page.wait_for("dklView.draws > 0 && dklView.stop !== null")
            assert await page.evaluate("dklView.events.filter(Boolean).length") == 6
            assert await page.evaluate("dklView.mapsVersion") == 6
            # drawn from the stop document's idle fraction
            await page.wait_for(
                "document.getElementById('idle').textContent === 'microscope idle 40%'"
            )

    asyncio.run(asyncio.wait_for(main(), 60))
