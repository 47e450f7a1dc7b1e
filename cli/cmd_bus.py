"""`dkl bus`: run the event bus proxy until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys

from dkl.bus import DEFAULT_BACKEND, DEFAULT_FRONTEND, BusError, run_proxy
from dkl.security import server_security


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bus",
        help="run the event bus proxy (publishers in, subscribers out)",
        description="Run the XSUB/XPUB proxy every publisher and viewer connects to. It prints "
        "its two endpoints and stops cleanly on Ctrl-C or SIGTERM. Loopback only unless CURVE "
        "keys are given (or --insecure).",
    )
    p.add_argument(
        "--frontend",
        default=DEFAULT_FRONTEND,
        metavar="ADDR",
        help=f"where publishers connect (default {DEFAULT_FRONTEND}; port 0: any free)",
    )
    p.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        metavar="ADDR",
        help=f"where subscribers connect (default {DEFAULT_BACKEND})",
    )
    p.add_argument(
        "--keys", metavar="DIR", help="CURVE: key directory (NAME.key_secret and authorized_keys/)"
    )
    p.add_argument("--name", default="bus", help="CURVE key name (default bus)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without CURVE (anyone on the network "
        "can read and publish)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        security = server_security(args.keys, args.name)
        return run_proxy(
            args.frontend,
            args.backend,
            security=security,
            insecure=args.insecure,
            announce=lambda line: print(line, flush=True),
        )
    except (BusError, OSError) as err:
        print(f"dkl bus: {err}", file=sys.stderr)
        return 2
