"""Do viewers slow the run? Publishing a run with no viewer, a live viewer, a stalled one.

    /work/venv/bin/python benchmarks/viewers.py                       # 300 steps, median of 3
    /work/venv/bin/python benchmarks/viewers.py --steps 60 --repeat 1 # quick

A fake agent (`dkl.viewer.testing.fake_agent`: proxy, journaled publisher, snapshot
service; journal without fsync so the bus is what is measured) publishes a synthetic run:
per step an event, a model update and 64×64 maps (three float32 arrays). Measured side by
side in one process: the time to publish every document with (a) no viewer, (b) a viewer
following live (`dkl.viewer.busio.follow`, its own thread and event loop), (c) a viewer
that joined and then stopped reading until the run was published. For (c) it also reports
how long the stalled viewer took to catch up and checks that it got every document once,
in order. Target: ratios ≈ 1 (a viewer never slows the run).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dkl.bus import read_log
from dkl.viewer.busio import FollowConfig, follow
from dkl.viewer.testing import fake_agent, fake_run_documents

TIMEOUT = 120.0


async def _child(bus: str, snapshot: str, total: int, stall: bool) -> None:
    """The viewer process: join, say so, (stall until told,) read everything, report."""
    stream = follow(FollowConfig(bus=bus, snapshot=snapshot))
    seqs = [(await asyncio.wait_for(anext(stream), TIMEOUT)).seq]
    print("joined", flush=True)
    if stall:
        await asyncio.to_thread(sys.stdin.readline)
    start = time.perf_counter()
    while len(seqs) < total:
        seqs.append((await asyncio.wait_for(anext(stream), TIMEOUT)).seq)
    caught_up = time.perf_counter() - start
    await stream.aclose()
    print(f"done {caught_up} {','.join(map(str, seqs))}", flush=True)


def publish_run(steps: int, viewer: str) -> tuple[float, float | None]:
    """Seconds to publish the run's documents; seconds the stalled viewer took to catch up."""
    docs = list(fake_run_documents(n=steps, shape=(64, 64)))
    with tempfile.TemporaryDirectory() as tmp, fake_agent(Path(tmp) / "journal.log") as agent:
        agent.publish(docs[:1])
        child = None
        if viewer != "none":
            child = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    agent.follow.bus,
                    agent.follow.snapshot or "",
                    str(len(docs)),
                    str(int(viewer == "stalled")),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        try:
            if child is not None and child.stdout.readline().strip() != "joined":
                raise RuntimeError("the viewer did not join")
            start = time.perf_counter()
            agent.publish(docs[1:])
            elapsed = time.perf_counter() - start
            if child is None:
                return elapsed, None
            out, _ = child.communicate("go\n", timeout=TIMEOUT)
            _, caught_up, seqs = out.split()
            expected = [m.seq for m in read_log(agent.journal)]
            if [int(s) for s in seqs.split(",")] != expected:
                raise RuntimeError(f"{viewer} viewer did not get the run exactly once, in order")
            return elapsed, float(caught_up)
        finally:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bus, snapshot, total, stall = args.child
        asyncio.run(_child(bus, snapshot, int(total), stall == "1"))
        return
    docs = 3 * args.steps + 1
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{args.steps} steps = {docs} documents (maps 3 x 64x64 float32 each step)\n")
    print(f"{'viewer':<10} {'publish (s)':>12} {'docs/s':>10} {'vs none':>8} {'catch-up (s)':>13}")
    base = None
    for viewer in ("none", "live", "stalled", "none"):
        runs = [publish_run(args.steps, viewer) for _ in range(args.repeat)]
        elapsed = statistics.median(r[0] for r in runs)
        base = base or elapsed
        late = ""
        if viewer == "stalled":
            late = f"{statistics.median(r[1] or 0.0 for r in runs):13.3f}"
        rate = docs / elapsed
        print(f"{viewer:<10} {elapsed:12.3f} {rate:10.0f} {elapsed / base:8.2f} {late:>13}")


if __name__ == "__main__":
    main()
