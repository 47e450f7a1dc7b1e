"""`dkl check FILE...`: validate experiment files without touching hardware."""

from __future__ import annotations

import argparse
import json
import sys

from dkl.dsl import DslInputError, compile_source, read_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check .dkl experiment files",
        description="Check experiment files: syntax, units, functions, modality, ranges, and "
        "(for built-in datasets and dataset files) the plan against the instrument. "
        "Exit status: 0 when there is no error (warnings allowed), 1 on errors, "
        "2 on usage or I/O problems.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="experiment files to check")
    p.add_argument("--json", action="store_true", help="print diagnostics as JSON lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            text = read_source(name)
        except DslInputError as err:
            for d in err.diagnostics:
                _emit(args, name, d, None)
            status = max(status, 2)
            continue
        result = compile_source(text, name, resolver=_resolver())
        for d in result.diagnostics:
            _emit(args, name, d, text)
        if result.plan is None:
            status = max(status, 1)
        elif not args.json:
            print(f"{name}: ok (plan {result.plan.sha256[:12]})")
    return status


def _emit(args: argparse.Namespace, name: str, diag: object, text: str | None) -> None:
    if args.json:
        print(json.dumps({"file": name, **diag.to_dict()}))  # type: ignore[attr-defined]
    else:
        print(diag.render(name, text), file=sys.stderr)  # type: ignore[attr-defined]


def _resolver():  # noqa: ANN202 - filled in by the instruments integration
    return None
