"""How fast `dkl check` reads experiment files: a 5,000-line file and a 100-statement file.

    /work/venv/bin/python benchmarks/dsl.py [--repeat 5]

The 5,000-line file is what a generated experiment looks like at its largest: a long
comment header and many `exclude` statements (the one repeatable statement), plus a
scalarizer and a stop. The 100-statement file is a realistic full experiment (every
statement once) followed by `exclude`s up to 100 statements. For each: the best of
`--repeat` runs of parse only, `fmt` (parse + canonical text) and the full check
(`compile_source`: parse + check + plan), in ms and lines/s, and the check's cost
relative to the parse, measured side by side in the same run. The grammar is compiled
once before timing (as in a long-running process); its one-off cost is shown too.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from dkl.dsl import compile_source, format_program, parse
from dkl.dsl.parser import grammar

FULL = """\
experiment "benchmark"
instrument sim builtin "plasmonic"
measure eels
exposure 50 ms
patch 16 px
stride 2 px
region 2 px .. 61 px, 2 px .. 61 px
scalarize ratio(peak(1.2 eV .. 2.4 eV), mean(0.5 eV .. 1 eV)) + 0.1 * width(peak(1))
maximize
acquire EI xi=0.01
seed random 10
model dkl embed=2 hidden=[64, 64] kernel=rbf steps=200 lr=0.01 precision=single
train every 1
stop after 200 or when uncertainty < 0.05
publish "tcp://127.0.0.1:5702"
"""


def exclude(i: int) -> str:
    x, y = (i * 7) % 60, (i * 13) % 60
    return f"exclude {x} px .. {x + 3} px, {y} px .. {y + 3} px"


def five_thousand_lines() -> str:
    lines = ["# A generated experiment: avoid every contaminated spot found earlier."]
    lines += ["scalarize peak(1.2 eV .. 2.4 eV)", "stop after 50"]
    i = 0
    while len(lines) < 5000:
        lines.append(f"# spot {i}: carbon contamination seen on the survey")
        lines.append(exclude(i))
        lines.append("")
        i += 1
    return "\n".join(lines[:5000]) + "\n"


def hundred_statements() -> str:
    statements = FULL.splitlines()
    statements += [exclude(i) for i in range(100 - len(statements))]
    return "\n".join(statements) + "\n"


def best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best kept)")
    args = parser.parse_args()

    start = time.perf_counter()
    grammar()
    grammar_ms = (time.perf_counter() - start) * 1e3

    files = {"5,000 lines": five_thousand_lines(), "100 statements": hundred_statements()}
    print(f"grammar compiled once per process: {grammar_ms:.0f} ms\n")
    header = (f"{'file':<16} {'lines':>6} {'stmts':>6} {'parse ms':>9} {'fmt ms':>8} "
              f"{'check ms':>9} {'check lines/s':>14} {'check/parse':>12}")
    print(header)
    print("-" * len(header))
    for name, text in files.items():
        result = compile_source(text)
        assert result.plan is not None, [d.message for d in result.errors]
        n_lines = text.count("\n")
        n_statements = len(parse(text).statements)
        t_parse = best_of(lambda t=text: parse(t), args.repeat)
        t_fmt = best_of(lambda t=text: format_program(parse(t)), args.repeat)
        t_check = best_of(lambda t=text: compile_source(t), args.repeat)
        print(f"{name:<16} {n_lines:>6} {n_statements:>6} {t_parse * 1e3:>9.1f} "
              f"{t_fmt * 1e3:>8.1f} {t_check * 1e3:>9.1f} {n_lines / t_check:>14,.0f} "
              f"{t_check / t_parse:>12.2f}")


if __name__ == "__main__":
    main()
