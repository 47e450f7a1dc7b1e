"""`dkl report`: the HTML page and its PNGs, checked by looking at the pixels."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from dkl import cmd_report
from dkl.viewer import ReportError, load_results, write_report
from dkl.viewer.testing import fake_run_documents, write_fake_run_dir, write_journal

SHAPE = (24, 32)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_fake_run_dir(tmp_path / "run", n=10, shape=SHAPE)


def _pixels(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def test_report_writes_html_referencing_existing_nonblank_figures(run_dir: Path) -> None:
    html_path = write_report(run_dir)
    assert html_path == run_dir / "report.html"
    page = html_path.read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    names = {Path(s).stem for s in sources}
    assert {
        "survey",
        "prediction",
        "uncertainty",
        "acquisition",
        "dose_map",
        "curves",
        "latency",
    } <= names
    for src in sources:
        assert not Path(src).is_absolute()  # relative: the folder works when copied
        pixels = _pixels(run_dir / src)
        assert pixels[..., :3].astype(float).var() > 0, f"{src} is blank"
    assert "stop after 10" in page  # the plan source
    assert "exposure" in page and "p95" in page  # the timings table


def test_map_pixels_have_the_survey_shape_and_the_maps_data(run_dir: Path) -> None:
    write_report(run_dir)
    results = load_results(run_dir / "results.npz")
    for name in ("prediction", "uncertainty", "acquisition", "dose_map"):
        pixels = _pixels(run_dir / "figures" / f"{name}_pixels.png")
        assert pixels.shape[:2] == SHAPE
        values = getattr(results, name)
        # NaN (off-candidate) pixels are exactly the transparent ones
        np.testing.assert_array_equal(pixels[..., 3] == 0, np.isnan(values))
        # brighter map values give different colours: the image follows the data
        finite = np.isfinite(values)
        lo, hi = (
            np.unravel_index(np.nanargmin(values), SHAPE),
            np.unravel_index(np.nanargmax(values), SHAPE),
        )
        assert finite[lo] and finite[hi]
        assert not np.array_equal(pixels[lo], pixels[hi])


def test_report_uses_the_journal_for_status_and_model_loss(run_dir: Path) -> None:
    write_journal(run_dir / "journal.log", fake_run_documents(n=10, shape=SHAPE))
    page = write_report(run_dir).read_text()
    assert "<b class='status-success'>success</b>" in page
    assert "of at most 10" in page
    assert "<th>Model device</th><td>CPU:0</td>" in page
    assert (run_dir / "figures" / "loss.png").is_file()


def test_report_without_plan_or_journal_still_works(run_dir: Path) -> None:
    (run_dir / "plan.dkl").unlink()
    page = write_report(run_dir).read_text()
    assert "No plan source found" in page
    assert "unknown (no run.stop" in page


def test_empty_run_gives_a_report(tmp_path: Path) -> None:
    run_dir = write_fake_run_dir(tmp_path / "run", n=1, shape=SHAPE)
    with np.load(run_dir / "results.npz") as npz:
        arrays = {
            k: npz[k][:0] if npz[k].ndim and npz[k].shape[0] == 1 and k != "survey" else npz[k]
            for k in npz.files
        }
    np.savez(run_dir / "results.npz", **arrays)
    assert write_report(run_dir).is_file()


def test_malformed_results_give_a_clear_error(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="not a directory"):
        write_report(tmp_path / "nope")
    with np.load(run_dir / "results.npz") as npz:
        arrays = dict(npz)
    np.savez(run_dir / "results.npz", **{**arrays, "prediction": np.zeros((3, 3))})
    with pytest.raises(ReportError, match="prediction has shape"):
        write_report(run_dir)
    (run_dir / "results.npz").write_bytes(b"not a zip")
    with pytest.raises(ReportError, match="not a readable"):
        write_report(run_dir)


def test_cli_prints_the_report_path(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cmd_report.register(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    args = parser.parse_args(["report", str(run_dir / "missing")])
    assert args.func(args) == 2
    assert "not a directory" in capsys.readouterr().err


def test_an_unfinished_run_marks_the_next_point(run_dir: Path) -> None:
    docs = list(fake_run_documents(n=10, shape=SHAPE))
    write_journal(run_dir / "journal.log", docs)
    write_report(run_dir)
    finished = _pixels(run_dir / "figures" / "survey.png")
    (run_dir / "journal.log").unlink()
    write_journal(run_dir / "journal.log", docs[:-1])  # killed before run.stop
    page = write_report(run_dir).read_text()
    assert "unknown (no run.stop" in page
    unfinished = _pixels(run_dir / "figures" / "survey.png")
    # the green "next" star is drawn only for the unfinished run
    green = lambda p: int(((p[..., 1] > 200) & (p[..., 0] < 80) & (p[..., 2] < 80)).sum())  # noqa: E731
    assert green(unfinished) > green(finished) + 20
