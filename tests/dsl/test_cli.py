"""`dkl check`, `dkl fmt` and `dkl explain` driven in-process: exit codes, output, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from dkl.dsl import Plan, compile_source
from dkl.main import main

ONE_LINER = "scalarize ratio(peak(1), peak(2)); acquire EI; stop after 200"
INTERNAL = ("__ANON", "Token(", "Traceback", "lark")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert not any(word in out + err for word in INTERNAL), out + err
    return status, out, err


def write(tmp_path: Path, text: str | bytes, name: str = "e.dkl") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return str(path)


# --- dkl check ----------------------------------------------------------------------------


def test_check_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "check", write(tmp_path, ONE_LINER + "\n"))
    assert status == 0 and "ok (plan " in out and err == ""


def test_check_warnings_still_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "check", write(tmp_path, "scalarize peak(1)\n"))
    assert status == 0
    assert "warning[W001]" in err and "ok (plan" in out


def test_check_errors_exit_1_with_rendered_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "scalarize peek(1)\nstop after 0\n")
    status, out, err = run(capsys, "check", path)
    assert status == 1 and out == ""
    assert err.splitlines() == [
        f"{path}:1:11: error[E110]: unknown function `peek`; did you mean `peak`?",
        "   1 | scalarize peek(1)",
        "     |           ^^^^",
        f"{path}:2:12: error[E130]: the number of measurements must be at least 1, not `0`",
        "   2 | stop after 0",
        "     |            ^",
    ]


def test_check_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "scalarize peek(1)\n")
    status, out, _ = run(capsys, "check", "--json", path)
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 1
    assert [(r["code"], r["line"], r["column"]) for r in rows] == [("W001", 1, 1), ("E110", 1, 11)]
    assert all(r["file"] == path for r in rows)


def test_check_many_files_worst_status_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, ONE_LINER, "good.dkl")
    bad = write(tmp_path, "scalarize peek(1)", "bad.dkl")
    assert run(capsys, "check", good, bad)[0] == 1
    assert run(capsys, "check", good, bad, str(tmp_path / "missing.dkl"))[0] == 2


@pytest.mark.parametrize(("content", "code", "fragment"), [
    (bytes(range(256)) * 4, "E902", "not a text file (invalid UTF-8 at byte 128)"),
    (b"scalarize peak(1)\x00\n", "E902", "not a text file (NUL byte at offset 17)"),
    (b"\xff\xfe\x00s\x00c", "E902", "not a text file"),
])
def test_check_binary_junk_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   content: bytes, code: str, fragment: str) -> None:
    path = write(tmp_path, content)
    status, _, err = run(capsys, "check", path)
    assert status == 2
    assert err.startswith(f"{path}: error[{code}]: {fragment}")


def test_check_empty_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "")
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert err.strip() == (f"{path}:1:1: error[E103]: the file is empty: say what to measure, "
                           "e.g. `scalarize peak(1)`")


def test_check_directory_missing_and_huge(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "check", str(tmp_path))
    assert status == 2
    assert err.strip() == f"{tmp_path}: error[E901]: is a directory, not an experiment file"
    missing = str(tmp_path / "nope.dkl")
    status, _, err = run(capsys, "check", missing)
    assert status == 2 and err.strip() == f"{missing}: error[E901]: no such file"
    huge = write(tmp_path, "# comment\n" * 1_000_000, "huge.dkl")  # 10 MB
    status, _, err = run(capsys, "check", huge)
    assert status == 2
    assert err.strip() == (f"{huge}: error[E903]: too large for an experiment file "
                           "(10.0 MB; the limit is 1 MB)")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    assert "FILE" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "fmt", "explain"])
def test_subcommand_help_is_useful(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "FILE" in out and len(out.split()) > 30


# --- dkl fmt ------------------------------------------------------------------------------

MESSY = ('# plasmons\r\nscalarize   ratio( peak(1),peak(2) ) ;acquire ei xi=0.02\r\n\r\n\r\n'
         'stop after 40   # short\r\n')
CANONICAL = ("# plasmons\nscalarize ratio(peak(1), peak(2))\nacquire EI xi=0.02\n\n"
             "stop after 40  # short\n")


def test_fmt_prints_canonical_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "fmt", write(tmp_path, MESSY))
    assert status == 0 and out == CANONICAL


def test_fmt_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MESSY)
    assert run(capsys, "fmt", "--check", path)[0] == 1
    assert Path(path).read_bytes() == MESSY.encode()  # --check changes nothing
    assert run(capsys, "fmt", "--write", path)[0] == 0
    assert Path(path).read_text(encoding="utf-8") == CANONICAL
    assert run(capsys, "fmt", "--check", path)[0] == 0
    before = compile_source(MESSY).plan
    assert before is not None and compile_source(CANONICAL).plan == before


def test_fmt_syntax_error_exits_1_and_keeps_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "scalarize peak(1\n")
    status, out, err = run(capsys, "fmt", "--write", path)
    assert status == 1 and out == ""
    assert "error[E004]" in err and "   1 | scalarize peak(1" in err
    assert Path(path).read_text(encoding="utf-8") == "scalarize peak(1\n"


def test_fmt_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "fmt", write(tmp_path, b"\x89PNG\r\n\x1a\n\x00"))[0] == 2
    assert run(capsys, "fmt", str(tmp_path))[0] == 2


# --- dkl explain --------------------------------------------------------------------------


def test_explain_shows_every_default_of_the_one_liner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "explain", write(tmp_path, ONE_LINER + "\n"))
    assert status == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for said in ("scalarize", "acquire", "stop"):
        assert "(default)" not in rows[said]
    for default in ("instrument", "modality", "patch", "stride", "region", "seed", "model",
                    "train", "publish", "goal"):
        assert rows[default].endswith("(default)"), rows[default]
    assert "built-in dataset `plasmonic`" in rows["instrument"]
    assert "ratio(peak(1), peak(2))" in rows["scalarize"]
    assert "EI xi=0.01" in rows["acquire"]
    assert "random 5 points" in rows["seed"]
    assert "steps=200" in rows["model"]
    assert "after 200 measurements" in rows["stop"]


def test_explain_json_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ONE_LINER + "\n")
    status, out, _ = run(capsys, "explain", "--json", path)
    assert status == 0
    data = json.loads(out)
    plan = Plan.from_dict(data)
    expected = compile_source(ONE_LINER + "\n", path).plan
    assert plan == expected
    assert plan.to_dict() == data
    assert Plan.from_dict(msgpack.unpackb(msgpack.packb(data))) == plan
    assert data["acquire"] == {"name": "ei", "xi": 0.01, "beta": 4.0, "penalty_px": 0.0}
    assert data["stop"] == [{"kind": "after", "value": 200.0, "op": ">="}]


def test_explain_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "explain", write(tmp_path, "scalarize peak(0)\n"))
    assert status == 1 and out == "" and "error[E130]" in err and "^" in err
    status, _, err = run(capsys, "explain", str(tmp_path / "missing.dkl"))
    assert status == 2 and "error[E901]: no such file" in err


# --- dkl check reads dataset files ----------------------------------------------------------

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def eds_npz(tmp_path: Path) -> Path:
    """A tiny EDS dataset: 6×8 grid, 0 .. 2000 eV, 2 nm pixels."""
    import numpy as np

    path = tmp_path / "eds.npz"
    np.savez(path, spectra=np.ones((6, 8, 40), dtype=np.float32),
             energy=np.linspace(0.0, 2000.0, 40), modality=np.array("eds"),
             pixel_size_nm=np.array(2.0))
    return path


def test_check_reads_the_dataset_file(eds_npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = eds_npz.parent
    good = write(folder, 'instrument sim "eds.npz"\nmeasure eds\npatch 8 nm\n'
                 "scalarize ratio(sum(0.45 keV .. 0.6 keV), sum(1.65 keV .. 1.85 keV))\n"
                 "stop after 5\n", "good.dkl")
    assert run(capsys, "check", good)[0] == 0
    bad = write(folder, 'instrument sim "eds.npz"\nmeasure 4dstem\n'
                "region 0 px .. 10 px, 0 px .. 3 px\nscalarize vbf(1 mrad)\nstop after 5\n",
                "bad.dkl")
    status, _, err = run(capsys, "check", bad)
    assert status == 1
    assert err.splitlines()[0].endswith("error[E144]: the dataset `eds.npz` holds eds data, "
                                        "not 4dstem: write `measure eds` or choose another "
                                        "instrument")
    assert "error[E142]: the x range `0 px .. 10 px` leaves the instrument's grid (0 px .. 7 px)" \
        in err
    outside = write(folder, 'instrument sim "eds.npz"\nscalarize sum(3 keV .. 4 keV)\n'
                    "stop after 5\n", "outside.dkl")
    status, _, err = run(capsys, "check", outside)
    assert status == 1
    assert "2:15: error[E141]: the window lies outside what `eds.npz` measures " \
           "(0 eV .. 2000 eV)" in err


def test_check_unreadable_dataset_is_e143(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.npz").write_text("not a zip archive")
    path = write(tmp_path, 'instrument sim "broken.npz"\nscalarize peak(1)\nstop after 5\n')
    status, _, err = run(capsys, "check", path)
    assert status == 1
    assert f"1:16: error[E143]: cannot use `{tmp_path / 'broken.npz'}` as a dataset: " in err


@pytest.mark.data
def test_check_eds_example_against_the_recorded_data(capsys: pytest.CaptureFixture[str]) -> None:
    if not (DATA / "particlespy_SiO2_EDS" / "SiO2_EDS_Spectrum_Image.hspy").is_file():
        pytest.skip("../shared/data/particlespy_SiO2_EDS is not checked out")
    example = Path(__file__).resolve().parents[2] / "experiments" / "eds_o_si_ratio.dkl"
    status, out, err = run(capsys, "check", str(example))
    assert (status, err) == (0, "")
    assert "ok (plan" in out


# --- dkl check --connect asks a running instrument ------------------------------------------


@pytest.fixture
def plasmonic_server() -> Iterator[Any]:
    from dkl.instruments.datasets import load_builtin
    from dkl.instruments.server import serve_instrument
    from dkl.instruments.sim import SimMicroscope

    server = serve_instrument(SimMicroscope(load_builtin("plasmonic", size=16)))
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_check_connect_checks_against_the_running_instrument(
    plasmonic_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = plasmonic_server.endpoint
    text = (f'instrument "{address}"\nmeasure 4dstem\nregion 0 px .. 20 px, 0 px .. 4 px\n'
            "scalarize com.x\nstop after 5\n")
    path = write(tmp_path, text)
    assert run(capsys, "check", path)[0] == 0  # without --connect only the file is checked
    status, _, err = run(capsys, "check", "--connect", path)
    assert status == 1
    assert "2:9: error[E144]: the instrument `" in err and "holds eels data, not 4dstem" in err
    assert "3:8: error[E142]: the x range `0 px .. 20 px` leaves the instrument's grid " \
           "(0 px .. 15 px)" in err


def test_check_connect_to_nothing_is_e145(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path, f'instrument "tcp://127.0.0.1:{port}"\nscalarize peak(1)\n'
                 "stop after 5\n")
    status, _, err = run(capsys, "check", "--connect", "--timeout", "0.5", path)
    assert status == 1
    assert f"1:12: error[E145]: cannot reach the instrument at `tcp://127.0.0.1:{port}`: " \
           "no answer within 0.5 s" in err
