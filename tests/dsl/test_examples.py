"""Every example the project shows must check clean: LANGUAGE.md, experiments/, the one-liner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dkl.dsl import compile_source, format_program, load_plan, parse, read_source

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
LANGUAGE = SHARED / "LANGUAGE.md"
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.dkl"))
ONE_LINER = "scalarize ratio(peak(1), peak(2)); acquire EI; stop after 200"


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", markdown, flags=re.S | re.M)


def errors_of(text: str, path: Path | None = None) -> list[str]:
    result = compile_source(text, str(path) if path else None)
    return [d.render(str(path or "example.dkl"), text) for d in result.errors]


def language_statement_lines() -> list[str]:
    if not LANGUAGE.is_file():
        return []
    blocks = code_blocks(LANGUAGE.read_text(encoding="utf-8"))
    statements = next(b for b in blocks if b.startswith("experiment "))
    lines = [line.split("#")[0].strip() for line in statements.splitlines()]
    stops = re.findall(r"`(stop [^`]+)`", LANGUAGE.read_text(encoding="utf-8"))
    return [line for line in lines if line] + stops


@pytest.mark.skipif(not LANGUAGE.is_file(), reason="../shared/LANGUAGE.md is not checked out")
@pytest.mark.parametrize("line", language_statement_lines())
def test_language_md_statement_checks_clean(line: str, tmp_path: Path) -> None:
    # LANGUAGE.md's `instrument sim "data/si.npz"`, `"si.dm3"` and `"haadf.dm3"` name files
    # that do not exist anywhere: we create them next to the experiment file (relative paths
    # are relative to the .dkl file), so the line is checked as written; the check only
    # needs them to exist, no resolver reads them.
    for name in ("data/si.npz", "si.dm3", "haadf.dm3"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    text = line if line.startswith("scalarize") else f"{line}\nscalarize peak(1)"
    assert errors_of(text, tmp_path / "example.dkl") == []


@pytest.mark.skipif(not LANGUAGE.is_file(), reason="../shared/LANGUAGE.md is not checked out")
def test_language_md_dataset_lines_without_the_files_give_only_e143(tmp_path: Path) -> None:
    for line in language_statement_lines():
        if line.startswith("instrument sim \""):
            result = compile_source(f"{line}\nscalarize peak(1)", str(tmp_path / "e.dkl"))
            assert {d.code for d in result.errors} == {"E143"}, line


@pytest.mark.skipif(not LANGUAGE.is_file(), reason="../shared/LANGUAGE.md is not checked out")
def test_language_md_covers_every_statement() -> None:
    said = {line.split()[0] for line in language_statement_lines()}
    assert said == {"experiment", "instrument", "measure", "exposure", "patch", "stride",
                    "region", "exclude", "scalarize", "maximize", "acquire", "seed", "model",
                    "train", "stop", "publish"}


def test_the_one_liner_checks_clean_without_warnings() -> None:
    result = compile_source(ONE_LINER)
    assert result.diagnostics == []
    plan = result.plan
    assert plan is not None
    assert (plan.instrument.kind, plan.instrument.name, plan.modality) == (
        "builtin", "plasmonic", "eels")
    assert (plan.acquire.name, plan.max_measurements, plan.maximize) == ("ei", 200, True)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_experiment_checks_clean(path: Path) -> None:
    text = read_source(path)
    for match in re.finditer(r'"([^"]+\.(?:hspy|npz|dm3|dm4|h5|emd))"', text):
        if not (path.parent / match.group(1)).exists():
            pytest.skip(f"needs {match.group(1)} (../shared/data is not checked out)")
    result = compile_source(text, str(path))
    assert [d.render(path.name, text) for d in result.diagnostics] == []
    plan = load_plan(path)
    assert plan.max_measurements is not None and plan.max_measurements <= 200


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_experiment_is_canonical_and_says_what_it_looks_for(path: Path) -> None:
    text = read_source(path)
    if ONE_LINER not in text:  # the mission's one-liner is kept on one line, as written
        assert format_program(parse(text)) == text
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert len(header) >= 2 and text.startswith("#"), "a comment header says what physics"


def test_experiments_cover_the_mission() -> None:
    assert len(EXPERIMENTS) >= 8
    texts = {p.name: read_source(p) for p in EXPERIMENTS}
    assert ONE_LINER in texts["peak_ratio.dkl"]
    everything = "\n".join(texts.values())
    for needle in ("peak(", "ratio(", "width(", "count(peaks)", "edge(", "com.magnitude",
                   "com.angle", "vabf(", "measure eds"):
        assert needle in everything, needle
    readme = (ROOT / "experiments" / "README.md").read_text(encoding="utf-8")
    for name in texts:
        assert name in readme, f"experiments/README.md does not list {name}"
