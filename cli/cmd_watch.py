"""`dkl watch`: follow runs on the bus in the terminal (or as JSON lines)."""

from __future__ import annotations

import argparse
import asyncio


def register(subparsers: argparse._SubParsersAction) -> None:
    from dkl.viewer.busio import DEFAULT_BUS, DEFAULT_SOURCE

    parser = subparsers.add_parser(
        "watch",
        help="follow runs live: progress, one line per measurement, start and stop",
        description="Follow runs on the event bus. Started mid-run, it shows the run from "
        "its start (history from the agent's snapshot service, then live).",
    )
    parser.add_argument(
        "--bus", default=DEFAULT_BUS, help=f"bus subscriber address ({DEFAULT_BUS})"
    )
    parser.add_argument(
        "--snapshot",
        metavar="ADDR",
        help="the agent's snapshot/control address, to show runs from their start",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="publisher id of the agent")
    parser.add_argument("--json", action="store_true", help="print every document as one JSON line")
    parser.add_argument(
        "--arrays",
        choices=("summary", "full"),
        default="summary",
        help="with --json: arrays as {dtype, shape, min, max, mean, nan} or as nested lists",
    )
    parser.add_argument("--exit-after-run", action="store_true", help="exit when a run stops")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dkl.viewer.busio import FollowConfig
    from dkl.viewer.live import run_watch
    from dkl.viewer.watch import default_output

    config = FollowConfig(bus=args.bus, snapshot=args.snapshot, source=args.source)
    out = default_output(args.json, args.arrays)
    return asyncio.run(run_watch(config, out, exit_after_run=args.exit_after_run))
