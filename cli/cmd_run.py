"""`dkl run FILE`: run an experiment end to end on loopback (the embedded default)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dkl.dsl import DslInputError, compile_source, read_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run an experiment (bus, instrument and agent on loopback)",
        description="Run an experiment end to end: start the bus, the instrument the plan "
        "names (the built-in simulated microscope by default) and the agent as separate "
        "processes on loopback, show progress, write the run directory (journal, "
        "results.npz, report.html) and shut everything down. Ctrl-C stops the run cleanly; "
        "a second Ctrl-C aborts it.",
    )
    p.add_argument("file", metavar="FILE", help="the .dkl experiment")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<run id>)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated microscope speed-up; 0: no simulated waiting (default 1)")
    p.add_argument("--bus", metavar="FRONTEND,BACKEND",
                   help="publish on a running `dkl bus` instead of starting one")
    p.add_argument("--noise", choices=["none", "poisson"], default="poisson",
                   help="shot noise of the simulated microscope (default poisson)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dkl.embedded import EmbeddedConfig, run_embedded

    try:
        source = read_source(args.file)
    except DslInputError as err:
        print(err.diagnostics[0].render(args.file, None), file=sys.stderr)
        return 2
    result = compile_source(source, args.file)
    for d in result.diagnostics:
        print(d.render(args.file, source), file=sys.stderr)
    if result.plan is None:
        return 1
    config = EmbeddedConfig(plan=result.plan, source=source, path=str(Path(args.file).resolve()),
                            out=Path(args.out) if args.out else None, seed=args.seed,
                            speed=args.speed, bus=args.bus, noise=args.noise,
                            report=not args.no_report, quiet=args.quiet)
    return run_embedded(config)
