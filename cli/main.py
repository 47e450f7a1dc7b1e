"""The `dkl` command: one sub-command per module `dkl.cmd_<name>`.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int`. This file only dispatches; behaviour lives in the library.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dkl import __version__

#: Sub-command modules, in the order `dkl --help` lists them.
COMMANDS = [
    "run",
    "check",
    "fmt",
    "explain",
    "watch",
    "view",
    "report",
    "agent",
    "resume",
    "instrument",
    "bus",
    "keys",
]

_DESCRIPTION = """\
Autonomous electron-microscope experiments with deep-kernel learning.

Write an experiment as a .dkl file, check it, and run it on the simulated microscope:

  dkl check experiments/plasmon_peak.dkl
  dkl run experiments/plasmon_peak.dkl
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dkl", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dkl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"dkl.cmd_{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `dkl` command line; returns the process exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("dkl: interrupted", file=sys.stderr)
        return 130
