"""Golden diagnostics: every broken program gives exactly the expected output.

Two tables, both data: `golden_syntax.py` and `golden_checks.py` pin the full rendered
output (file, line, column, code, message, source line, caret) of each broken program;
`MESSAGES` below is Lark-style (`GRAMMAR_ERRORS` in lark/load_grammar.py): several bad
snippets that must all get the same code and message, so a message does not depend on one
lucky spelling.
"""

from __future__ import annotations

import re

import pytest

from dkl.dsl import Diagnostic, compile_source

from .golden_checks import GOLDEN as CHECKS
from .golden_syntax import GOLDEN as SYNTAX

GOLDEN = SYNTAX + CHECKS

HEADER = re.compile(r"^t\.dkl:(\d+):(\d+): (error|warning)\[([EW]\d{3})\]: (.+)$")
INTERNAL = ("__ANON", "Token(", "Traceback", "lark", "$END", "NEWLINE", "DIMENSIONED")


def render_all(source: str, filename: str = "t.dkl") -> str:
    result = compile_source(source, None)
    return "\n".join(d.render(filename, source) for d in result.diagnostics)


@pytest.mark.parametrize(("title", "source", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_diagnostics(title: str, source: str, expected: list[str]) -> None:
    assert render_all(source).split("\n") == expected


@pytest.mark.parametrize(("title", "source", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_output_is_well_formed(title: str, source: str, expected: list[str]) -> None:
    headers = [line for line in expected if line.startswith("t.dkl")]
    assert headers, "every broken program gets at least one diagnostic"
    for line in headers:
        m = HEADER.match(line)
        assert m, line
        assert not any(word in m.group(5) for word in INTERNAL), line
    # every header with a position is followed by its source line and a caret line, and the
    # caret sits under the character the header's column names (long lines are shown in part)
    lines = source.split("\n")
    for i, line in enumerate(expected):
        m = HEADER.match(line)
        if not (m and i + 2 < len(expected) and expected[i + 1].lstrip().startswith(m.group(1))):
            continue
        shown = expected[i + 1][expected[i + 1].index("|") + 2:]
        caret = expected[i + 2]
        offset = caret.index("^") - caret.index("|") - 2
        row, col = int(m.group(1)), int(m.group(2))
        under = lines[row - 1][col - 1:col]
        assert shown[offset:offset + 1] == (under if under.isprintable() else "\ufffd") or (
            offset == len(shown) and col == len(lines[row - 1].rstrip("\r")) + 1), (line, caret)


def test_golden_table_covers_every_code() -> None:
    codes = {m.group(4) for _, _, exp in GOLDEN for m in map(HEADER.match, exp) if m}
    wanted = {"E001", "E002", "E003", "E004", "E005", "E006", "E007", "E010", "E011", "E102",
              "E103", "E110", "E111", "E112", "E113", "E114", "E120", "E122", "E123", "E130",
              "E131", "E132", "E133", "E140", "E141", "E142", "E143", "E144", "E150", "E151",
              "E152", "E153", "E160", "E161", "W001", "W002", "W010"}
    assert wanted <= codes, sorted(wanted - codes)
    assert len(GOLDEN) >= 40


# (code, message, bad snippets): every snippet's first diagnostic has this code and message
MESSAGES: list[tuple[str, str, list[str]]] = [
    ("E003", 'unterminated string: add the closing `"` on the same line', [
        'experiment "plasmons',
        'scalarize peak(1)\npublish "tcp://127.0.0.1:5702',
        'instrument sim "a.npz\nscalarize peak(1)',
    ]),
    ("E004", "the file ends in the middle of a statement; `(` is not closed: add `)`", [
        "scalarize peak(",
        "scalarize ratio(peak(1), peak(2)",
        "scalarize abs((peak(1))",
    ]),
    ("E004", "the statement is not finished; expected a number, a number with a unit or `-`", [
        "stop after\nscalarize peak(1)",
        "scalarize peak(1)\nexposure\n",
        "scalarize peak(1)\ntrain every ;",
    ]),
    ("E005", "missing `..` before `2 eV`: a window is written `LOW .. HIGH`, e.g. "
     "`1.2 eV .. 1.6 eV`", [
        "scalarize peak(1 eV 2 eV)",
        "scalarize mean(1eV 2 eV)",
        "scalarize edge(1 eV .. 3 eV, background=0.5 eV 2 eV)",
    ]),
    ("E006", "`stop` starts a new statement: put it on its own line or separate the "
     "statements with `;`", [
        "scalarize peak(1) stop after 5",
        "scalarize peak(1)\nacquire EI stop after 5",
        "scalarize peak(1)\nseed random 5 stop after 5",
    ]),
    ("E010", "unknown statement `aquire`; did you mean `acquire`?", [
        "aquire EI",
        "scalarize peak(1)\naquire EI",
        "scalarize peak(1); aquire EI",
    ]),
    ("E011", "unknown unit `ev`; did you mean `eV`? (units: eV, keV, mrad, px, nm, A, ms, s, "
     "min, e/A2)", [
        "scalarize peak(1 ev .. 2 eV)",
        "scalarize peak(1)\nstop when best > 3 ev",
        "scalarize mean(1.5ev .. 2 eV)",
    ]),
    ("E110", "unknown function `peek`; did you mean `peak`?", [
        "scalarize peek(1)",
        "scalarize ratio(peek(1), peak(2))",
        "scalarize 2 * width(peek(1)) - 1",
    ]),
    ("E122", "a window of `peak` needs a unit: write `1 eV`", [
        "scalarize peak(1 .. 2 eV)",
        "scalarize width(peak(1 .. 2 eV))",
        "scalarize energy(peak(1 .. 3 eV)) / 2",
    ]),
    ("E140", "`com.magnitude` needs diffraction patterns (`measure 4dstem`), but this "
     "experiment measures eels", [
        "scalarize com.magnitude",
        "measure eels\nscalarize com.magnitude",
        'instrument sim builtin "plasmonic"\nscalarize -com.magnitude',
    ]),
]


@pytest.mark.parametrize(
    ("code", "message", "snippet"),
    [(code, msg, s) for code, msg, snippets in MESSAGES for s in snippets],
)
def test_messages_match_examples(code: str, message: str, snippet: str) -> None:
    diags = compile_source(snippet, None).diagnostics
    assert diags, snippet
    first = next(d for d in diags if d.is_error)
    assert (first.code, first.message) == (code, message)


@pytest.mark.parametrize("junk", [
    "\x00\x01\x02", "((((((((((", "))))", "scalarize " + "(" * 200 + "peak(1)" + ")" * 200,
    "scalarize peak(1)\n" * 3, "..", "= = =", "scalarize 1e999999 * peak(1)", "🙂",
    "scalarize peak(1); ;;; stop after 1e3", "measure\n", "instrument sim", "\r\r\r",
    "scalarize peak(99999999999999999999999)", "stop when when when",
    "scalarize " + "-" * 5000 + "peak(1)", "scalarize " + " * ".join(["peak(1)"] * 3000),
    "scalarize " + "abs(" * 3000 + "peak(1)" + ")" * 3000, "scalarize " + "(" * 3000,
])
def test_junk_never_leaks_internals(junk: str) -> None:
    out = render_all(junk)
    assert not any(word in out for word in INTERNAL), out


def test_huge_expressions_are_refused_not_crashed() -> None:
    from dkl.dsl import DslSyntaxError, format_program, parse

    for text in ("scalarize " + "-" * 5000 + "peak(1)",
                 "scalarize " + " / ".join(["peak(1)"] * 3000),
                 "scalarize " + "sqrt(" * 3000 + "peak(1)" + ")" * 3000):
        with pytest.raises(DslSyntaxError) as info:
            format_program(parse(text))
        assert [d.code for d in info.value.diagnostics] == ["E007"]
    deep_parentheses = "scalarize " + "(" * 3000 + "peak(1)" + ")" * 3000 + "; stop after 5"
    assert compile_source(deep_parentheses).plan is not None  # parentheses add no depth


def test_diagnostic_to_dict_has_position() -> None:
    d = Diagnostic("error", "E130", "m", 2, 3, 5)
    assert d.to_dict() == {"severity": "error", "code": "E130", "message": "m", "line": 2,
                           "column": 3}
