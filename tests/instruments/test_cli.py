"""`dkl instrument sim|nion` is wired into the `dkl` command and reports bad input."""

from __future__ import annotations

import pytest

from dkl.main import build_parser, main


def test_sim_options_parse() -> None:
    args = build_parser().parse_args(
        [
            "instrument",
            "sim",
            "data.npz",
            "--survey",
            "haadf.dm3",
            "--speed",
            "0",
            "--noise",
            "poisson",
            "--deadman",
            "5",
            "--dispersion",
            "0.5",
        ]
    )
    assert args.dataset == "data.npz" and args.survey == "haadf.dm3"
    assert args.speed == 0 and args.noise == "poisson" and args.deadman == 5.0
    assert args.dispersion == 0.5 and callable(args.func)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["builtin:nope"], "unknown built-in dataset"),
        (["missing.npz"], "no such file"),
        (["builtin:plasmonic", "--faults", "nan=1"], "known keys"),
        (["builtin:plasmonic", "--speed", "-1"], "speed"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(["instrument", "sim", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_detector_option_is_for_builtin_4dstem_only(capsys) -> None:
    assert main(["instrument", "sim", "builtin:plasmonic", "--detector", "32"]) == 2
    assert "builtin:4dstem only" in capsys.readouterr().err
