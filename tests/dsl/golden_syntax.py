"""Broken programs and the exact diagnostics they must produce (file, line, column, code, message).

Data, not code: `test_golden.py` runs every row. Each row is (title, source, rendered output
of `dkl check` for a file called `t.dkl`), every diagnostic in source order, one list item
per output line. When a message is improved on purpose, update its row here: the table is
the contract users see.

Syntax errors (E0nn): the parser stops at the first.
"""

# ruff: noqa: E501

GOLDEN: list[tuple[str, str, list[str]]] = [
    (
        'unknown statement, did you mean',
        'scalarise peak(1)\n',
        [
            't.dkl:1:1: error[E010]: unknown statement `scalarise`; did you mean `scalarize`?',
            '   1 | scalarise peak(1)',
            '     | ^^^^^^^^^',
        ],
    ),
    (
        'unknown statement, no close match',
        'scalarize peak(1)\nfrobnicate 3\n',
        [
            't.dkl:2:1: error[E010]: unknown statement `frobnicate`',
            '   2 | frobnicate 3',
            '     | ^^^^^^^^^^',
        ],
    ),
    (
        'unexpected character',
        'scalarize peak(1) $\n',
        [
            't.dkl:1:19: error[E002]: unexpected character `$`',
            '   1 | scalarize peak(1) $',
            '     |                   ^',
        ],
    ),
    (
        'single quotes',
        "experiment 'plasmons'\nscalarize peak(1)\n",
        [
            't.dkl:1:12: error[E002]: unexpected character `\'`: strings use double quotes (`"..."`)',
            "   1 | experiment 'plasmons'",
            '     |            ^',
        ],
    ),
    (
        'unprintable character',
        'scalarize peak(1)\x0b\n',
        [
            't.dkl:1:18: error[E002]: unexpected character U+000B',
            '   1 | scalarize peak(1)�',
            '     |                  ^',
        ],
    ),
    (
        'unterminated string',
        'experiment "plasmons\nscalarize peak(1)\n',
        [
            't.dkl:1:12: error[E003]: unterminated string: add the closing `"` on the same line',
            '   1 | experiment "plasmons',
            '     |            ^',
        ],
    ),
    (
        'end of file mid-statement',
        'scalarize ratio(peak(1),',
        [
            't.dkl:1:25: error[E004]: the file ends in the middle of a statement; `(` is not closed: add `)`',
            '   1 | scalarize ratio(peak(1),',
            '     |                         ^',
        ],
    ),
    (
        'end of line mid-statement',
        'stop after\nscalarize peak(1)\n',
        [
            't.dkl:1:11: error[E004]: the statement is not finished; expected a number, a number with a unit or `-`',
            '   1 | stop after',
            '     |           ^',
        ],
    ),
    (
        'unclosed parenthesis',
        'scalarize (peak(1)\nstop after 5\n',
        [
            't.dkl:1:19: error[E004]: the statement is not finished; `(` is not closed: add `)`',
            '   1 | scalarize (peak(1)',
            '     |                   ^',
        ],
    ),
    (
        'unclosed list',
        'scalarize peak(1)\nmodel dkl hidden=[64, 64\n',
        [
            't.dkl:2:25: error[E004]: the statement is not finished; `[` is not closed: add `]`',
            '   2 | model dkl hidden=[64, 64',
            '     |                         ^',
        ],
    ),
    (
        'unmatched parenthesis',
        'scalarize peak(1))\nstop after 5\n',
        [
            't.dkl:1:18: error[E001]: unmatched `)`: there is no `(` to close',
            '   1 | scalarize peak(1))',
            '     |                  ^',
        ],
    ),
    (
        'unknown unit, did you mean',
        'scalarize peak(1 eV .. 2 ev)\nstop after 5\n',
        [
            't.dkl:1:26: error[E011]: unknown unit `ev`; did you mean `eV`? (units: eV, keV, mrad, px, nm, A, ms, s, min, e/A2)',
            '   1 | scalarize peak(1 eV .. 2 ev)',
            '     |                          ^^',
        ],
    ),
    (
        'unknown unit',
        'scalarize peak(1)\nexposure 50 sec\n',
        [
            't.dkl:2:13: error[E011]: unknown unit `sec` (units: eV, keV, mrad, px, nm, A, ms, s, min, e/A2)',
            '   2 | exposure 50 sec',
            '     |             ^^^',
        ],
    ),
    (
        'missing dots in a window',
        'scalarize peak(1 eV 2 eV)\nstop after 5\n',
        [
            't.dkl:1:21: error[E005]: missing `..` before `2 eV`: a window is written `LOW .. HIGH`, e.g. `1.2 eV .. 1.6 eV`',
            '   1 | scalarize peak(1 eV 2 eV)',
            '     |                     ^^^^',
        ],
    ),
    (
        'missing comma between windows',
        'exclude 0 px .. 8 px 0 px .. 8 px\nscalarize peak(1)\n',
        [
            't.dkl:1:22: error[E005]: missing `,` before `0 px`',
            '   1 | exclude 0 px .. 8 px 0 px .. 8 px',
            '     |                      ^^^^',
        ],
    ),
    (
        'missing comma in a point',
        'scalarize peak(1)\nseed at (1 px 2 px)\n',
        [
            't.dkl:2:15: error[E005]: missing `,` before `2 px`',
            '   2 | seed at (1 px 2 px)',
            '     |               ^^^^',
        ],
    ),
    (
        'two statements on one line',
        'scalarize peak(1) stop after 5\n',
        [
            't.dkl:1:19: error[E006]: `stop` starts a new statement: put it on its own line or separate the statements with `;`',
            '   1 | scalarize peak(1) stop after 5',
            '     |                   ^^^^',
        ],
    ),
    (
        'missing comma between arguments',
        'scalarize ratio(peak(1) peak(2))\nstop after 5\n',
        [
            't.dkl:1:25: error[E005]: missing `,` before `peak`: arguments are separated by commas',
            '   1 | scalarize ratio(peak(1) peak(2))',
            '     |                         ^^^^',
        ],
    ),
    (
        'unclosed parenthesis before a statement',
        'scalarize ratio(peak(1), peak(2) stop after 5\n',
        [
            't.dkl:1:34: error[E004]: `(` is not closed: add `)` before `stop`',
            '   1 | scalarize ratio(peak(1), peak(2) stop after 5',
            '     |                                  ^^^^',
        ],
    ),
    (
        'setting without a value',
        'scalarize peak(1)\nacquire EI xi\nstop after 5\n',
        [
            't.dkl:2:14: error[E004]: the statement is not finished; `xi` needs a value: write `xi=VALUE`',
            '   2 | acquire EI xi',
            '     |              ^',
        ],
    ),
    (
        'unknown unit written against the number',
        'scalarize peak(1)\nexposure 50mss\n',
        [
            't.dkl:2:12: error[E011]: unknown unit `mss`; did you mean `ms`? (units: eV, keV, mrad, px, nm, A, ms, s, min, e/A2)',
            '   2 | exposure 50mss',
            '     |            ^^^',
        ],
    ),
    (
        'expression too large',
        'scalarize -----------------------------------------------------------------------------------------------------peak(1)\nstop after 5\n',
        [
            't.dkl:1:11: error[E007]: the expression is too large (more than 100 nested operations or calls): split it up',
            '   1 | scalarize -----------------------------------------------------------------------------------------------------peak(1)',
            '     |           ^',
        ],
    ),
    (
        'string where an expression belongs',
        'scalarize "peak(1)"\nstop after 5\n',
        [
            't.dkl:1:11: error[E001]: unexpected string "peak(1)"; expected `(`, a name, a number, a number with a unit or `-`',
            '   1 | scalarize "peak(1)"',
            '     |           ^^^^^^^^^',
        ],
    ),
]
