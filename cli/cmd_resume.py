"""`dkl resume`: continue a paused run (agent) or an interrupted run directory (journal)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dkl.cmd_agent import DEFAULT_AGENT, _client_security_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="resume a paused run, or continue a killed run from its directory",
        description="Without RUN_DIR: ask the agent to resume its paused run. With RUN_DIR: "
        "rebuild a run that was killed from its journal and continue it on loopback "
        "(like `dkl run`), never re-measuring a point the journal holds.",
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("--agent", default=DEFAULT_AGENT, metavar="ADDR",
                   help="agent control socket (resuming a paused run)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated microscope speed-up")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--json", action="store_true", help="print the agent's reply as JSON")
    _client_security_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.run_dir is None:
        from dkl.cmd_agent import run_control

        args.action = "resume"
        return run_control(args)
    from dkl.agent.journal import read_journal
    from dkl.dsl import Plan
    from dkl.embedded import EmbeddedConfig, run_embedded

    run_dir = Path(args.run_dir)
    try:
        state = read_journal(run_dir)
    except (OSError, ValueError) as err:
        print(f"dkl resume: cannot read {run_dir}: {err}")
        return 2
    if state.stopped is not None:
        print(f"dkl resume: {run_dir} already ended ({state.stopped.get('exit_status')}: "
              f"{state.stopped.get('reason')})")
        return 1
    plan = Plan.from_dict(state.start["plan"])
    config = EmbeddedConfig(plan=plan, resume_dir=run_dir, out=run_dir, speed=args.speed,
                            report=not args.no_report, quiet=args.quiet)
    return run_embedded(config)
