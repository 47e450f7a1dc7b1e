"""Diagnostics and the error family of the language.

Every problem a user can make is a `Diagnostic` with a stable code, rendered exactly as
LANGUAGE.md shows: `FILE:LINE:COL: error[Ennn]: message`, the source line, and a caret
under the offending token. `DslError` → `DslSyntaxError` (the parser),
`DslSemanticError` (the checker), `DslInputError` (the file cannot be read).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Longer source lines are shown in part, around the caret.
MAX_SHOWN = 120


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning at a place in a file."""

    severity: str  # "error" | "warning"
    code: str  # "E101", "W001", ...
    message: str
    line: int = 0  # 1-based; 0 when the problem concerns the whole file
    column: int = 0
    end_column: int = 0

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def render(self, filename: str, source: str | None) -> str:
        """The user-facing text: header line, then the source line and a caret line."""
        where = f"{filename}:{self.line}:{self.column}" if self.line else filename
        text = f"{where}: {self.severity}[{self.code}]: {self.message}"
        if not (self.line and source is not None):
            return text
        lines = source.split("\n")  # as the parser counts lines (not str.splitlines)
        if self.line > len(lines) or not lines[self.line - 1].strip():
            return text  # nothing to point at
        src = "".join(c if c.isprintable() else "\ufffd" if c != "\t" else " "
                      for c in lines[self.line - 1].rstrip("\r"))
        width = max(1, self.end_column - self.column) if self.end_column > self.column else 1
        width = min(width, max(1, len(src) - self.column + 1))
        offset = self.column - 1
        if len(src) > MAX_SHOWN:  # show the part of a very long line around the caret
            start = max(0, min(offset - MAX_SHOWN // 3, len(src) - MAX_SHOWN))
            src = ("…" if start else "") + src[start:start + MAX_SHOWN] + (
                "…" if start + MAX_SHOWN < len(src) else "")
            offset = offset - start + (1 if start else 0)
            width = min(width, MAX_SHOWN - offset + 1)
        gutter = f"{self.line:>4} | "
        caret = " " * (len(gutter) - 2) + "| " + " " * offset + "^" * width
        return f"{text}\n{gutter}{src}\n{caret}"

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "column": self.column,
        }


class DslError(Exception):
    """Root of the language's errors; carries the diagnostics that explain it."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("; ".join(d.message for d in self.diagnostics))


class DslSyntaxError(DslError):
    """The text is not a sentence of the language."""


class DslSemanticError(DslError):
    """The text parses but does not make sense (wrong unit, unknown function, ...)."""


class DslInputError(DslError):
    """The file could not be read as an experiment file at all."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """` did you mean `x`?` when a choice is close to `name`, else the empty string."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean `{lowered[close[0]]}`?" if close else ""
