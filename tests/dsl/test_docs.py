"""docs/language.md stays true: its diagnostic examples are the checker's exact output,
every function and every diagnostic code is documented, and its examples check clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dkl.dsl import compile_source
from dkl.dsl.functions import DIFFRACTION, FUNCTIONS, REFS
from dkl.main import main

from .test_golden import GOLDEN

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")


def diagnostic_examples() -> list[tuple[str, str, str]]:
    """(code, source, expected output) for each `### Ennn: ...` section."""
    pattern = re.compile(r"^### ([EW]\d{3}): [^\n]*\n\n```dkl\n(.*?)\n```\n\n```text\n(.*?)\n```",
                         flags=re.S | re.M)
    return [(m.group(1), m.group(2) + "\n", m.group(3)) for m in pattern.finditer(TEXT)]


EXAMPLES = diagnostic_examples()


@pytest.mark.parametrize(("code", "source", "expected"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_diagnostic_is_the_checker_output(
    code: str, source: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # exactly what the page claims: `dkl check example.dkl` run in the file's folder
    (tmp_path / "example.dkl").write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status = main(["check", "example.dkl"])
    rendered = capsys.readouterr().err.rstrip("\n")
    assert rendered == expected
    assert f"[{code}]" in rendered
    assert status == (0 if code.startswith("W") else 1)


def test_every_diagnostic_code_is_documented() -> None:
    emitted = {m for _, _, lines in GOLDEN for line in lines
               for m in re.findall(r"(?:error|warning)\[([EW]\d{3})\]", line)}
    documented = {code for code, _, _ in EXAMPLES}
    assert emitted <= documented, sorted(emitted - documented)
    for code in ("E901", "E902", "E903"):
        assert f"| {code} |" in TEXT
    assert "error[E145]: cannot reach the instrument at" in TEXT


def test_every_function_and_name_is_documented_with_a_working_example() -> None:
    for fn in FUNCTIONS.values():
        assert f"| `{fn.name}` |" in TEXT and f"`{fn.example}`" in TEXT, fn.name
        if fn.name == "edge":
            head = 'instrument sim builtin "core-loss"\n'
        elif fn.needs == DIFFRACTION or "com." in fn.example:
            head = "measure 4dstem\n"
        else:
            head = ""
        result = compile_source(f"{head}scalarize {fn.example}\nstop after 5\n")
        assert result.diagnostics == [], (fn.example, result.diagnostics)
    for name in REFS:
        assert f"| `{name}` |" in TEXT
        assert compile_source(f"measure 4dstem\nscalarize {name}\nstop after 5\n").diagnostics == []


def test_dkl_code_blocks_outside_diagnostics_check_clean() -> None:
    before_diagnostics = TEXT.split("## Diagnostics")[0]
    blocks = re.findall(r"^```dkl\n(.*?)^```", before_diagnostics, flags=re.S | re.M)
    assert blocks
    for block in blocks:
        assert compile_source(block).diagnostics == [], block
