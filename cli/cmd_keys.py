"""`dkl keys init NAME --role ROLE`: write a CURVE key pair for one process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dkl.bus import ROLES, init_keys

DEFAULT_DIR = "~/.dkl/keys"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="manage CURVE keys for the bus",
        description="Every process that talks beyond loopback has its own CURVE key pair; the "
        "role written into the public key decides what it may do (viewer: subscribe only; "
        "operator: submit/pause/resume/stop/abort; agent; instrument).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="write NAME.key and NAME.key_secret, and trust NAME in authorized_keys/",
        description="Write DIR/NAME.key (public, with its role), DIR/NAME.key_secret "
        "(mode 600) and DIR/authorized_keys/NAME.key. Copy NAME.key into the "
        "authorized_keys/ directory of every server on another machine that should trust it.",
    )
    init.add_argument("name", metavar="NAME", help="key name, e.g. agent, bus, alice")
    init.add_argument("--role", required=True, choices=ROLES, help="what this key may do")
    init.add_argument(
        "--dir", default=DEFAULT_DIR, metavar="D", help=f"key directory (default {DEFAULT_DIR})"
    )
    init.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        public, secret, trusted = init_keys(Path(args.dir).expanduser(), args.name, args.role)
    except (ValueError, OSError) as err:
        print(f"dkl keys: {err}", file=sys.stderr)
        return 2
    print(f"public key:  {public}")
    print(f"secret key:  {secret}  (keep private)")
    print(f"trusted in:  {trusted}")
    return 0
