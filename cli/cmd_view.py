"""`dkl view`: serve the live web dashboard of the current run on loopback."""

from __future__ import annotations

import argparse
import asyncio


def register(subparsers: argparse._SubParsersAction) -> None:
    from dkl.viewer.busio import DEFAULT_BUS, DEFAULT_SOURCE

    parser = subparsers.add_parser(
        "view",
        help="live web dashboard: maps, path, curves, latency, pause/resume/stop",
        description="Serve a live dashboard of the current run at http://127.0.0.1:PORT/. "
        "Any number of browsers may connect; one opened late gets the whole run.",
    )
    parser.add_argument(
        "--bus", default=DEFAULT_BUS, help=f"bus subscriber address ({DEFAULT_BUS})"
    )
    parser.add_argument(
        "--control",
        metavar="ADDR",
        help="the agent's control address, for the pause/resume/stop buttons (operator role)",
    )
    parser.add_argument(
        "--snapshot",
        metavar="ADDR",
        help="the agent's snapshot address (default: the control address)",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="publisher id of the agent")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port on 127.0.0.1 (8765)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dkl.viewer.busio import FollowConfig
    from dkl.viewer.live import run_view

    snapshot = args.snapshot or args.control
    config = FollowConfig(bus=args.bus, snapshot=snapshot, source=args.source)
    return asyncio.run(run_view(config, control=args.control, port=args.port))
