"""Broken programs and the exact diagnostics they must produce (file, line, column, code, message).

Data, not code: `test_golden.py` runs every row. Each row is (title, source, rendered output
of `dkl check` for a file called `t.dkl`), every diagnostic in source order, one list item
per output line. When a message is improved on purpose, update its row here: the table is
the contract users see.

Checker diagnostics (E1nn, Wnnn): all of a file's come out in one run.
"""

# ruff: noqa: E501

GOLDEN: list[tuple[str, str, list[str]]] = [
    (
        'statement given twice',
        'scalarize peak(1)\nscalarize peak(2)\nstop after 5\n',
        [
            't.dkl:2:1: error[E102]: `scalarize` is given twice (first on line 1); keep one',
            '   2 | scalarize peak(2)',
            '     | ^^^^^^^^^',
        ],
    ),
    (
        'maximize and minimize',
        'maximize\nscalarize peak(1)\nminimize\nstop after 5\n',
        [
            't.dkl:3:1: error[E102]: `minimize` contradicts `maximize` on line 1; keep one',
            '   3 | minimize',
            '     | ^^^^^^^^',
        ],
    ),
    (
        'missing scalarize',
        'acquire EI\nstop after 5\n',
        [
            't.dkl:1:1: error[E103]: missing `scalarize`: say what to measure, e.g. `scalarize peak(1)`',
            '   1 | acquire EI',
            '     | ^',
        ],
    ),
    (
        'empty file',
        '',
        [
            't.dkl:1:1: error[E103]: the file is empty: say what to measure, e.g. `scalarize peak(1)`',
        ],
    ),
    (
        'unknown function, did you mean',
        'scalarize peek(1)\nstop after 5\n',
        [
            't.dkl:1:11: error[E110]: unknown function `peek`; did you mean `peak`?',
            '   1 | scalarize peek(1)',
            '     |           ^^^^',
        ],
    ),
    (
        'unknown name, did you mean',
        'scalarize pek\nstop after 5\n',
        [
            't.dkl:1:11: error[E110]: unknown name `pek`; did you mean `peak`?',
            '   1 | scalarize pek',
            '     |           ^^^',
        ],
    ),
    (
        'com is not a function',
        'measure 4dstem\nscalarize com(1)\nstop after 5\n',
        [
            't.dkl:2:11: error[E110]: unknown function `com`; the centre of mass is `com.x`, `com.y`, `com.magnitude` or `com.angle`',
            '   2 | scalarize com(1)',
            '     |           ^^^',
        ],
    ),
    (
        'too few arguments',
        'scalarize ratio(peak(1))\nstop after 5\n',
        [
            't.dkl:1:24: error[E111]: `ratio` takes 2 arguments, got 1: add the missing one (e.g. `ratio(peak(1), peak(2))`)',
            '   1 | scalarize ratio(peak(1))',
            '     |                        ^',
        ],
    ),
    (
        'too many arguments',
        'scalarize peak(1, 2)\nstop after 5\n',
        [
            't.dkl:1:19: error[E111]: `peak` takes 1 argument, got 2: remove it (e.g. `peak(1)`)',
            '   1 | scalarize peak(1, 2)',
            '     |                   ^',
        ],
    ),
    (
        'no arguments',
        'scalarize ratio()\nstop after 5\n',
        [
            't.dkl:1:17: error[E111]: `ratio` takes 2 arguments, got 0: add the 2 missing ones (e.g. `ratio(peak(1), peak(2))`)',
            '   1 | scalarize ratio()',
            '     |                 ^',
        ],
    ),
    (
        'argument kind: peak of a name',
        'scalarize width(1)\nstop after 5\n',
        [
            't.dkl:1:17: error[E112]: `width` expects a peak, such as `peak(1)` or `peak(1.2 eV .. 1.6 eV)`',
            '   1 | scalarize width(1)',
            '     |                 ^',
        ],
    ),
    (
        'argument kind: count needs peaks',
        'scalarize count(peak)\nstop after 5\n',
        [
            't.dkl:1:17: error[E112]: `count` expects `peaks`, as in `count(peaks)`',
            '   1 | scalarize count(peak)',
            '     |                 ^^^^',
        ],
    ),
    (
        'peaks alone',
        'scalarize peaks\nstop after 5\n',
        [
            't.dkl:1:11: error[E112]: `peaks` is only meaningful as `count(peaks)`',
            '   1 | scalarize peaks',
            '     |           ^^^^^',
        ],
    ),
    (
        'function used as a name',
        'scalarize peak\nstop after 5\n',
        [
            't.dkl:1:11: error[E112]: `peak` is a function: call it, e.g. `peak(1)`',
            '   1 | scalarize peak',
            '     |           ^^^^',
        ],
    ),
    (
        'unknown keyword argument',
        'instrument sim builtin "core-loss"\nscalarize edge(455 eV .. 475 eV, backgrond=420 eV .. 450 eV)\nstop after 5\n',
        [
            't.dkl:2:34: error[E113]: `backgrond` is not a keyword of `edge` (it takes `background`); did you mean `background`?',
            '   2 | scalarize edge(455 eV .. 475 eV, backgrond=420 eV .. 450 eV)',
            '     |                                  ^^^^^^^^^',
        ],
    ),
    (
        'unknown model setting',
        'scalarize peak(1)\nmodel dkl stepz=100\nstop after 5\n',
        [
            't.dkl:2:11: error[E113]: `stepz` is not a model setting; did you mean `steps`? (settings: `embed`, `hidden`, `kernel`, `steps`, `lr`, `precision`, `linear`)',
            '   2 | model dkl stepz=100',
            '     |           ^^^^^',
        ],
    ),
    (
        'constant scalarizer',
        'scalarize 2 * 3\nstop after 5\n',
        [
            't.dkl:1:11: error[E114]: `2 * 3` is a constant: the scalarizer must measure something, e.g. `peak(1)` or `com.magnitude`',
            '   1 | scalarize 2 * 3',
            '     |           ^^^^^',
        ],
    ),
    (
        'wrong unit kind',
        'exposure 50 eV\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:10: error[E120]: the exposure is a time, but `50 eV` is an energy',
            '   1 | exposure 50 eV',
            '     |          ^^^^^',
        ],
    ),
    (
        'length unit in a scalarizer',
        'scalarize peak(1) * 5 px\nstop after 5\n',
        [
            't.dkl:1:21: error[E120]: a number in a scalarizer may carry an energy or an angle unit, not `px`: write `5` or use eV / mrad',
            '   1 | scalarize peak(1) * 5 px',
            '     |                     ^^^^',
        ],
    ),
    (
        'wrong unit kind in a window',
        'scalarize mean(1 mrad .. 2 mrad)\nstop after 5\n',
        [
            't.dkl:1:16: error[E120]: a window of `mean` is an energy, but `1 mrad` is an angle',
            '   1 | scalarize mean(1 mrad .. 2 mrad)',
            '     |                ^^^^^^',
            't.dkl:1:26: error[E120]: a window of `mean` is an energy, but `2 mrad` is an angle',
            '   1 | scalarize mean(1 mrad .. 2 mrad)',
            '     |                          ^^^^^^',
        ],
    ),
    (
        'stop after an energy',
        'scalarize peak(1)\nstop after 5 eV\n',
        [
            't.dkl:2:12: error[E120]: `stop after` takes a number of measurements or a time (`30 min`), but `5 eV` is an energy',
            '   2 | stop after 5 eV',
            '     |            ^^^^',
        ],
    ),
    (
        'missing unit in a window',
        'scalarize peak(1.2 .. 1.6 eV)\nstop after 5\n',
        [
            't.dkl:1:16: error[E122]: a window of `peak` needs a unit: write `1.2 eV`',
            '   1 | scalarize peak(1.2 .. 1.6 eV)',
            '     |                ^^^',
        ],
    ),
    (
        'missing unit on a radius',
        'measure 4dstem\nscalarize vbf(10)\nstop after 5\n',
        [
            't.dkl:2:15: error[E122]: the radius of `vbf` needs a unit: write `10 mrad`',
            '   2 | scalarize vbf(10)',
            '     |               ^^',
        ],
    ),
    (
        'nm without a pixel size',
        'instrument "tcp://127.0.0.1:5710"\npatch 20 nm\nscalarize peak(1)\nstop after 5\n',
        [
            "t.dkl:2:7: error[E123]: `20 nm` needs the instrument's pixel size, which is not known here; give the length in px",
            '   2 | patch 20 nm',
            '     |       ^^^^^',
        ],
    ),
    (
        'counts and patch ranges',
        'patch 2 px\nscalarize peak(1)\nseed random 0\nstop after 0\n',
        [
            't.dkl:1:7: error[E130]: the patch (in px) must be at least 3, not `2 px`',
            '   1 | patch 2 px',
            '     |       ^^^^',
            't.dkl:3:13: error[E130]: the number of seed points must be at least 1, not `0`',
            '   3 | seed random 0',
            '     |             ^',
            't.dkl:4:12: error[E130]: the number of measurements must be at least 1, not `0`',
            '   4 | stop after 0',
            '     |            ^',
        ],
    ),
    (
        'beta below zero',
        'scalarize peak(1)\nacquire UCB beta=-1\nstop after 5\n',
        [
            't.dkl:2:18: error[E130]: `beta` must be >= 0, not `-1`',
            '   2 | acquire UCB beta=-1',
            '     |                  ^^',
        ],
    ),
    (
        'xi below zero',
        'scalarize peak(1)\nacquire EI xi=-0.1\nstop after 5\n',
        [
            't.dkl:2:15: error[E130]: `xi` must be >= 0, not `-0.1`',
            '   2 | acquire EI xi=-0.1',
            '     |               ^^^^',
        ],
    ),
    (
        'learning rate zero',
        'scalarize peak(1)\nmodel dkl lr=0\nstop after 5\n',
        [
            't.dkl:2:14: error[E130]: the learning rate must be a number > 0, not `0`',
            '   2 | model dkl lr=0',
            '     |              ^',
        ],
    ),
    (
        'negative linear components',
        'scalarize peak(1)\nmodel dkl linear=-1\nstop after 5\n',
        [
            't.dkl:2:18: error[E130]: `linear` must be at least 0, not `-1`',
            '   2 | model dkl linear=-1',
            '     |                  ^^',
        ],
    ),
    (
        'number too large',
        'scalarize peak(1)\nexposure 1e400 s\nstop after 5\n',
        [
            't.dkl:2:10: error[E130]: `1e400 s` is too large for a number',
            '   2 | exposure 1e400 s',
            '     |          ^^^^^^^',
        ],
    ),
    (
        'peak number not whole',
        'scalarize peak(1.5)\nstop after 5\n',
        [
            't.dkl:1:16: error[E130]: peaks are counted from 1: `1.5` is not a peak number',
            '   1 | scalarize peak(1.5)',
            '     |                ^^^',
        ],
    ),
    (
        'empty window',
        'scalarize peak(2 eV .. 1 eV)\nstop after 5\n',
        [
            't.dkl:1:16: error[E131]: empty window: `2 eV` is not below `1 eV`',
            '   1 | scalarize peak(2 eV .. 1 eV)',
            '     |                ^^^^^^^^^^^^',
        ],
    ),
    (
        'empty region',
        'region 5 px .. 2 px, 0 px .. 10 px\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:8: error[E131]: empty x range: `5 px` is not below `2 px`',
            '   1 | region 5 px .. 2 px, 0 px .. 10 px',
            '     |        ^^^^^^^^^^^^',
        ],
    ),
    (
        'background above the edge',
        'instrument sim builtin "core-loss"\nscalarize edge(455 eV .. 475 eV, background=460 eV .. 480 eV)\nstop after 5\n',
        [
            "t.dkl:2:45: error[E132]: the background window must end at or below the edge window's start (455 eV): the power law is fitted below the edge and extrapolated upwards",
            '   2 | scalarize edge(455 eV .. 475 eV, background=460 eV .. 480 eV)',
            '     |                                             ^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'bad instrument address',
        'instrument "tcp://localhost"\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:12: error[E133]: `tcp://localhost` is not a ZeroMQ address (e.g. "tcp://127.0.0.1:5710")',
            '   1 | instrument "tcp://localhost"',
            '     |            ^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'bad publish address',
        'scalarize peak(1)\npublish "http://localhost:5702"\nstop after 5\n',
        [
            't.dkl:2:9: error[E133]: `http://localhost:5702` is not a ZeroMQ address (e.g. "tcp://127.0.0.1:5702")',
            '   2 | publish "http://localhost:5702"',
            '     |         ^^^^^^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'diffraction function on spectra',
        'scalarize com.x\nstop after 5\n',
        [
            't.dkl:1:11: error[E140]: `com.x` needs diffraction patterns (`measure 4dstem`), but this experiment measures eels',
            '   1 | scalarize com.x',
            '     |           ^^^^^',
        ],
    ),
    (
        'spectrum function on diffraction',
        'measure 4dstem\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:2:11: error[E140]: `peak` needs a spectrum (`measure eels` or `measure eds`), but this experiment measures 4dstem',
            '   2 | scalarize peak(1)',
            '     |           ^^^^',
        ],
    ),
    (
        'window outside the signal range',
        'scalarize peak(10 eV .. 20 eV)\nstop after 5\n',
        [
            't.dkl:1:16: error[E141]: the window lies outside what `plasmonic` measures (-0.5 eV .. 4.5 eV)',
            '   1 | scalarize peak(10 eV .. 20 eV)',
            '     |                ^^^^^^^^^^^^^^',
        ],
    ),
    (
        'region outside the grid',
        'region 0 px .. 100 px, 0 px .. 10 px\nscalarize peak(1)\nstop after 5\n',
        [
            "t.dkl:1:8: error[E142]: the x range `0 px .. 100 px` leaves the instrument's grid (0 px .. 63 px)",
            '   1 | region 0 px .. 100 px, 0 px .. 10 px',
            '     |        ^^^^^^^^^^^^^^',
        ],
    ),
    (
        'seed point outside the grid',
        'scalarize peak(1)\nseed at (3 px, 4 px), (100 px, 4 px)\nstop after 5\n',
        [
            't.dkl:2:23: error[E142]: the seed point (100 px, 4 px) is outside the 64×64 grid',
            '   2 | seed at (3 px, 4 px), (100 px, 4 px)',
            '     |                       ^^^^^^^^^^^^^^',
        ],
    ),
    (
        'patch larger than the survey',
        'patch 80 px\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:7: error[E142]: the patch (80 px) is larger than the 64×64 px survey',
            '   1 | patch 80 px',
            '     |       ^^^^^',
        ],
    ),
    (
        'missing dataset file',
        'instrument sim "no_such_file.npz"\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:16: error[E143]: dataset file not found: `no_such_file.npz`',
            '   1 | instrument sim "no_such_file.npz"',
            '     |                ^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'modality mismatch',
        'instrument sim builtin "4dstem"\nmeasure eels\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:2:9: error[E144]: the built-in dataset `4dstem` holds 4dstem data, not eels: write `measure 4dstem` or choose another instrument',
            '   2 | measure eels',
            '     |         ^^^^',
        ],
    ),
    (
        'no built-in dataset for EDS',
        'measure eds\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:9: error[E144]: no built-in dataset holds eds data: replay a recorded one with `instrument sim "FILE"`',
            '   1 | measure eds',
            '     |         ^^^',
        ],
    ),
    (
        'EDS on the EELS built-in',
        'instrument sim builtin "plasmonic"\nmeasure eds\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:2:9: error[E144]: the built-in dataset `plasmonic` holds eels data, not eds: write `measure eels` or choose another instrument',
            '   2 | measure eds',
            '     |         ^^^',
        ],
    ),
    (
        'unknown built-in dataset',
        'instrument sim builtin "plasmnic"\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:24: error[E150]: unknown built-in dataset `plasmnic`; did you mean `plasmonic`? (built-ins: `plasmonic`, `core-loss`, `4dstem`)',
            '   1 | instrument sim builtin "plasmnic"',
            '     |                        ^^^^^^^^^^',
        ],
    ),
    (
        'unknown acquisition',
        'scalarize peak(1)\nacquire EJ\nstop after 5\n',
        [
            't.dkl:2:9: error[E150]: unknown acquisition function `EJ` (EI, PI, UCB, uncertainty, thompson or random)',
            '   2 | acquire EJ',
            '     |         ^^',
        ],
    ),
    (
        'unknown seeding',
        'scalarize peak(1)\nseed randm 5\nstop after 5\n',
        [
            't.dkl:2:6: error[E151]: unknown seeding `randm`; did you mean `random`? (random N, grid N or at (x, y), ...)',
            '   2 | seed randm 5',
            '     |      ^^^^^',
        ],
    ),
    (
        'unknown kernel',
        'scalarize peak(1)\nmodel dkl kernel=rbff\nstop after 5\n',
        [
            't.dkl:2:18: error[E151]: unknown kernel `rbff`; did you mean `rbf`? (`rbf`, `matern52`)',
            '   2 | model dkl kernel=rbff',
            '     |                  ^^^^',
        ],
    ),
    (
        'unknown model',
        'scalarize peak(1)\nmodel gp\nstop after 5\n',
        [
            't.dkl:2:7: error[E151]: unknown model `gp` (the model is `dkl`)',
            '   2 | model gp',
            '     |       ^^',
        ],
    ),
    (
        'unknown stop quantity',
        'scalarize peak(1)\nstop when uncertanty < 0.1\n',
        [
            't.dkl:2:11: error[E152]: cannot stop on `uncertanty`; did you mean `uncertainty`? (uncertainty, best or dose)',
            '   2 | stop when uncertanty < 0.1',
            '     |           ^^^^^^^^^^',
        ],
    ),
    (
        'uncertainty the wrong way',
        'scalarize peak(1)\nstop when uncertainty > 0.1\n',
        [
            't.dkl:2:6: error[E153]: uncertainty shrinks as the run goes on: write `stop when uncertainty < 0.1`',
            '   2 | stop when uncertainty > 0.1',
            '     |      ^^^^^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'dose the wrong way',
        'scalarize peak(1)\nstop when dose < 1e6 e/A2\n',
        [
            't.dkl:2:6: error[E153]: dose grows as the run goes on: write `stop when dose > 1e6 e/A2`',
            '   2 | stop when dose < 1e6 e/A2',
            '     |      ^^^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'unknown modality',
        'measure eel\nscalarize peak(1)\nstop after 5\n',
        [
            't.dkl:1:9: error[E160]: unknown modality `eel`; did you mean `eels`? (eels, eds or 4dstem)',
            '   1 | measure eel',
            '     |         ^^^',
        ],
    ),
    (
        'unknown acquisition setting',
        'scalarize peak(1)\nacquire EI beta=2\nstop after 5\n',
        [
            't.dkl:2:12: error[E161]: `beta` is not a setting of `EI` (it takes `xi`, `penalty`)',
            '   2 | acquire EI beta=2',
            '     |            ^^^^',
        ],
    ),
    (
        'default stop',
        'scalarize peak(1)\n',
        [
            't.dkl:1:1: warning[W001]: no `stop` statement: the run stops after 200 measurements (say `stop after 200` to silence this)',
            '   1 | scalarize peak(1)',
            '     | ^^^^^^^^^',
        ],
    ),
    (
        'unbounded stop',
        'scalarize peak(1)\nstop when best > 3.5\n',
        [
            't.dkl:2:1: warning[W002]: this condition may never hold: the run also stops after 200 measurements (add `or after N` to choose)',
            '   2 | stop when best > 3.5',
            '     | ^^^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'window partly outside the range',
        'instrument sim builtin "core-loss"\nscalarize edge(340 eV .. 360 eV, background=300 eV .. 340 eV)\nstop after 5\n',
        [
            't.dkl:2:16: warning[W010]: the window reaches beyond what `core-loss` measures (350 eV .. 900 eV)',
            '   2 | scalarize edge(340 eV .. 360 eV, background=300 eV .. 340 eV)',
            '     |                ^^^^^^^^^^^^^^^^',
            't.dkl:2:45: error[E141]: the window lies outside what `core-loss` measures (350 eV .. 900 eV)',
            '   2 | scalarize edge(340 eV .. 360 eV, background=300 eV .. 340 eV)',
            '     |                                             ^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'annulus beyond the detector',
        'measure 4dstem\nscalarize vadf(50 mrad .. 150 mrad)\nstop after 5\n',
        [
            't.dkl:2:16: warning[W010]: the window reaches beyond what `4dstem` measures (0 mrad .. 100 mrad)',
            '   2 | scalarize vadf(50 mrad .. 150 mrad)',
            '     |                ^^^^^^^^^^^^^^^^^^^',
        ],
    ),
    (
        'a very long line is shown around the caret',
        'scalarize peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peek(2) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1)\nstop after 5\n',
        [
            't.dkl:1:111: error[E110]: unknown function `peek`; did you mean `peak`?',
            '   1 | …peak(1) + peak(1) + peak(1) + peak(1) + peek(2) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + peak(1) + …',
            '     |                                          ^^^^',
        ],
    ),
    (
        'many errors in one run',
        'measure eel\nexposure 5\nscalarize ratio(peek(1), peak(2 eV .. 1 eV))\nacquire EI beta=2\nstop after 0\n',
        [
            't.dkl:1:9: error[E160]: unknown modality `eel`; did you mean `eels`? (eels, eds or 4dstem)',
            '   1 | measure eel',
            '     |         ^^^',
            't.dkl:2:10: error[E122]: the exposure needs a unit: write `5 s`',
            '   2 | exposure 5',
            '     |          ^',
            't.dkl:3:17: error[E110]: unknown function `peek`; did you mean `peak`?',
            '   3 | scalarize ratio(peek(1), peak(2 eV .. 1 eV))',
            '     |                 ^^^^',
            't.dkl:3:31: error[E131]: empty window: `2 eV` is not below `1 eV`',
            '   3 | scalarize ratio(peek(1), peak(2 eV .. 1 eV))',
            '     |                               ^^^^^^^^^^^^',
            't.dkl:4:12: error[E161]: `beta` is not a setting of `EI` (it takes `xi`, `penalty`)',
            '   4 | acquire EI beta=2',
            '     |            ^^^^',
            't.dkl:5:12: error[E130]: the number of measurements must be at least 1, not `0`',
            '   5 | stop after 0',
            '     |            ^',
        ],
    ),
    (
        'errors after a CRLF and a semicolon',
        'experiment "x"\r\nscalarize peak(1); stop after 0\r\n',
        [
            't.dkl:2:31: error[E130]: the number of measurements must be at least 1, not `0`',
            '   2 | scalarize peak(1); stop after 0',
            '     |                               ^',
        ],
    ),
]
