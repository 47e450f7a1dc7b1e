"""`dkl explain FILE`: show the compiled plan with every default."""

from __future__ import annotations

import argparse
import json
import sys

from dkl.dsl import DslError, DslInputError, explain, load_plan, read_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="show the compiled plan, defaults included",
        description="Compile an experiment file and show the plan the agent would run, with "
        "every default filled in and units normalised (eV, mrad, px, s).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (for machines)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.file)
    except DslError as err:
        text = None if isinstance(err, DslInputError) else read_source(args.file)
        for d in err.diagnostics:
            print(d.render(args.file, text), file=sys.stderr)
        return 2 if isinstance(err, DslInputError) else 1
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        sys.stdout.write(explain(plan))
    return 0
