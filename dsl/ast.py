"""Typed syntax tree of a `.dkl` file: small frozen dataclasses that remember where they came from.

The checker reports problems at these spans, so every node that a diagnostic can point
at carries one. Nothing here is interpreted yet: units are as written, names unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Source position: 1-based line and column of the first character, and of the end."""

    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        return Span(self.line, self.column, other.end_line, other.end_column)


@dataclass(frozen=True)
class Quantity:
    """A number as written, with its unit (None when bare)."""

    value: float
    unit: str | None
    text: str
    span: Span


@dataclass(frozen=True)
class Window:
    low: Quantity
    high: Quantity
    span: Span


@dataclass(frozen=True)
class Word:
    """A bare identifier used as a value, e.g. `rbf` in `kernel=rbf`."""

    name: str
    span: Span


@dataclass(frozen=True)
class String:
    value: str
    span: Span


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span


Value = Quantity | Word | String | ListValue


@dataclass(frozen=True)
class Setting:
    """`name=value` after `acquire` or `model`."""

    name: str
    value: Value
    span: Span
    name_span: Span


# --- expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class NumberExpr:
    quantity: Quantity
    span: Span


@dataclass(frozen=True)
class RefExpr:
    """`peaks`, `com.x`: dotted names."""

    parts: tuple[str, ...]
    span: Span

    @property
    def name(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr | Window
    span: Span
    name_span: Span


@dataclass(frozen=True)
class CallExpr:
    fn: str
    args: tuple[Expr | Window | Keyword, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class BinaryExpr:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class NegExpr:
    operand: Expr
    span: Span


Expr = NumberExpr | RefExpr | CallExpr | BinaryExpr | NegExpr


# --- statements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement: `keyword` is its leading word (`scalarize`, `stop`, ...)."""

    keyword: str
    span: Span


@dataclass(frozen=True)
class Experiment(Statement):
    title: String


@dataclass(frozen=True)
class Instrument(Statement):
    """kind: builtin | file | remote | nion."""

    kind: str
    target: String | None = None
    survey: String | None = None
    sim: bool = False


@dataclass(frozen=True)
class Measure(Statement):
    modality: Word


@dataclass(frozen=True)
class QuantityStatement(Statement):
    """`exposure`, `patch`, `stride`: one quantity."""

    quantity: Quantity


@dataclass(frozen=True)
class Area(Statement):
    """`region` or `exclude`: an x window and a y window."""

    x: Window
    y: Window


@dataclass(frozen=True)
class Scalarize(Statement):
    expr: Expr


@dataclass(frozen=True)
class Direction(Statement):
    """`maximize` or `minimize` (the keyword says which)."""


@dataclass(frozen=True)
class Named(Statement):
    """`acquire NAME settings` and `model NAME settings`."""

    name: Word
    settings: tuple[Setting, ...]


@dataclass(frozen=True)
class SeedCount(Statement):
    kind: Word
    count: Quantity | None


@dataclass(frozen=True)
class Point:
    x: Quantity
    y: Quantity
    span: Span


@dataclass(frozen=True)
class SeedAt(Statement):
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Train(Statement):
    every: Quantity


@dataclass(frozen=True)
class StopAfter:
    amount: Quantity
    span: Span


@dataclass(frozen=True)
class StopWhen:
    quantity: Word
    op: str
    threshold: Quantity
    span: Span


@dataclass(frozen=True)
class Stop(Statement):
    conditions: tuple[StopAfter | StopWhen, ...]


@dataclass(frozen=True)
class Publish(Statement):
    address: String


@dataclass(frozen=True)
class Program:
    """A parsed file: its statements in source order and its comments."""

    statements: tuple[Statement, ...]
    comments: tuple[tuple[int, int, str], ...]  # (line, column, text)
