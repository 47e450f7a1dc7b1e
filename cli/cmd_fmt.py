"""`dkl fmt FILE`: print (or write) the canonical form of an experiment file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dkl.dsl import DslInputError, DslSyntaxError, format_program, parse, read_source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fmt",
        help="print the canonical form of a .dkl file",
        description="Print the canonical form of an experiment file (one statement per line, "
        "normalised spacing, comments kept). The canonical text compiles to the same plan, "
        "and formatting it again changes nothing.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--write", action="store_true", help="rewrite FILE in place")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if FILE is not already canonical (changes nothing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        text = read_source(args.file)
    except DslInputError as err:
        for d in err.diagnostics:
            print(d.render(args.file, None), file=sys.stderr)
        return 2
    try:
        canonical = format_program(parse(text))
    except DslSyntaxError as err:
        for d in err.diagnostics:
            print(d.render(args.file, text), file=sys.stderr)
        return 1
    if args.check:
        if canonical == text:
            return 0
        print(f"{args.file}: not in canonical form (run `dkl fmt --write {args.file}`)",
              file=sys.stderr)
        return 1
    if args.write:
        if canonical != text:
            Path(args.file).write_text(canonical, encoding="utf-8", newline="\n")
        return 0
    sys.stdout.write(canonical)
    return 0
