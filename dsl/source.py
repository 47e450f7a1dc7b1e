"""Reading an experiment file and compiling text to a plan: the language's front door."""

from __future__ import annotations

from pathlib import Path

from dkl.dsl.check import CheckResult, check
from dkl.dsl.errors import Diagnostic, DslError, DslInputError, DslSemanticError, DslSyntaxError
from dkl.dsl.facts import Resolver
from dkl.dsl.parser import parse
from dkl.dsl.plan import Plan

#: Experiment files are a few lines; anything this large is not one.
MAX_BYTES = 1_000_000


def read_source(path: str | Path) -> str:
    """The text of an experiment file.

    Raises:
        DslInputError: missing, a directory, unreadable, too large, or not UTF-8 text.
    """
    p = Path(path)

    def fail(code: str, message: str) -> DslInputError:
        return DslInputError([Diagnostic("error", code, message)])

    try:
        if p.is_dir():
            raise fail("E901", "is a directory, not an experiment file")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise fail("E903", f"too large for an experiment file ({size / 1e6:.1f} MB; "
                       f"the limit is {MAX_BYTES / 1e6:.0f} MB)")
        data = p.read_bytes()
    except FileNotFoundError:
        raise fail("E901", "no such file") from None
    except PermissionError:
        raise fail("E901", "permission denied") from None
    except OSError as err:
        raise fail("E901", f"cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise fail("E902", f"not a text file (invalid UTF-8 at byte {err.start})") from None
    if "\x00" in text:
        raise fail("E902", f"not a text file (NUL byte at offset {text.index(chr(0))})")
    return text


def compile_source(text: str, path: str | None = None, resolver: Resolver | None = None
                   ) -> CheckResult:
    """Parse and check experiment text; syntax errors come back as diagnostics too."""
    try:
        program = parse(text)
    except DslSyntaxError as err:
        return CheckResult(None, list(err.diagnostics))
    return check(program, text, path, resolver)


def load_plan(path: str | Path, resolver: Resolver | None = None) -> Plan:
    """Read, parse and check a `.dkl` file into a `Plan`.

    Raises:
        DslInputError, DslSyntaxError, DslSemanticError: with every diagnostic attached.

    Example:
        >>> plan = load_plan("experiments/plasmon_peak.dkl")  # doctest: +SKIP
        >>> plan.acquire.name
        'ei'
    """
    text = read_source(path)
    result = compile_source(text, str(path), resolver)
    if result.plan is None:
        errors = result.errors
        if errors and errors[0].code < "E100":
            raise DslSyntaxError(errors)
        raise DslSemanticError(errors)
    return result.plan


__all__ = ["DslError", "compile_source", "load_plan", "read_source"]
