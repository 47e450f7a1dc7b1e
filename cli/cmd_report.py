"""`dkl report RUN_DIR`: write the static HTML report and PNG figures of a finished run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.html and figures/*.png of a finished run",
        description="Write RUN_DIR/report.html and RUN_DIR/figures/*.png from the run's "
        "results.npz, plan.dkl and journal.log. The page works offline.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dkl.viewer import ReportError, write_report

    try:
        path = write_report(args.run_dir)
    except ReportError as err:
        print(f"dkl report: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0
