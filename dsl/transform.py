"""Build the typed syntax tree of `ast.py` from Lark's rules, as the parser reduces them.

One of the three modules that import Lark (with `parser.py` and `syntax_errors.py`). Every
node gets the span of the text it came from, so that diagnostics can point at the
offending argument.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import Any

from lark import Token, Transformer

from dkl.dsl import ast

_DIMENSIONED = re.compile(
    r"^(?P<num>[0-9.eE+-]+?)[ \t]*(?P<unit>keV|eV|mrad|px|nm|ms|min|s|A|e/A2)$"
)


def token_span(tok: Token) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line, tok.end_column)


def meta_span(meta: ast.Span) -> ast.Span:
    return meta


def _start(child: Any) -> tuple[int, int]:
    if isinstance(child, Token):
        return child.line, child.column  # type: ignore[return-value]
    span = child.span
    return span.line, span.column


def _end(child: Any) -> tuple[int, int]:
    if isinstance(child, Token):
        return child.end_line, child.end_column  # type: ignore[return-value]
    span = child.span
    return span.end_line, span.end_column


def _spanned(method: Callable[[Any, ast.Span, list[Any]], Any]) -> Callable[[Any, list[Any]], Any]:
    """Give a rule callback the span from its first to its last child.

    The parser runs `ToAst` inline (no intermediate parse tree, about twice as fast), where
    Lark offers no `meta`; every child is a token or a node with a `span`, so the rule's span
    is computed from them instead.
    """

    @wraps(method)
    def call(self: Any, children: list[Any]) -> Any:
        if not children:
            return method(self, ast.Span(1, 1, 1, 1), children)
        line, column = _start(children[0])
        end_line, end_column = _end(children[-1])
        return method(self, ast.Span(line, column, end_line, end_column), children)

    return call


def _string(tok: Token) -> ast.String:
    raw = str(tok)[1:-1]
    value = re.sub(r"\\(.)", r"\1", raw)
    return ast.String(value, token_span(tok))


def _word(tok: Token) -> ast.Word:
    return ast.Word(str(tok), token_span(tok))


class ToAst(Transformer):
    """Bottom-up construction of `ast` nodes; tokens that carry no meaning are dropped."""

    # --- values ---------------------------------------------------------------------
    @_spanned
    def quantity(self, meta: ast.Span, children: list[Token]) -> ast.Quantity:
        negative = len(children) == 2
        tok = children[-1]
        text = str(tok)
        if tok.type == "DIMENSIONED":
            m = _DIMENSIONED.match(text)
            assert m is not None
            number, unit = m.group("num"), m.group("unit")
        else:
            number, unit = text, None
        value = -float(number) if negative else float(number)
        shown = ("-" if negative else "") + (f"{number} {unit}" if unit else number)
        return ast.Quantity(value, unit, shown, meta_span(meta))

    @_spanned
    def window(self, meta: ast.Span, children: list[Any]) -> ast.Window:
        return ast.Window(children[0], children[2], meta_span(meta))

    @_spanned
    def point(self, meta: ast.Span, children: list[Any]) -> ast.Point:
        return ast.Point(children[1], children[3], meta_span(meta))

    @_spanned
    def word(self, meta: ast.Span, children: list[Token]) -> ast.Word:
        return _word(children[0])

    @_spanned
    def list(self, meta: ast.Span, children: list[Any]) -> ast.ListValue:
        items = tuple(c for c in children if not isinstance(c, Token) or c.type == "STRING")
        items = tuple(_string(c) if isinstance(c, Token) else c for c in items)
        return ast.ListValue(items, meta_span(meta))

    @_spanned
    def setting(self, meta: ast.Span, children: list[Any]) -> ast.Setting:
        name, _, value = children
        if isinstance(value, Token):
            value = _string(value)
        return ast.Setting(str(name), value, meta_span(meta), token_span(name))

    # --- expressions ----------------------------------------------------------------
    @_spanned
    def number(self, meta: ast.Span, children: list[Token]) -> ast.NumberExpr:
        q = ToAst.quantity.__wrapped__(self, meta, children)  # type: ignore[attr-defined]
        return ast.NumberExpr(q, q.span)

    @_spanned
    def ref(self, meta: ast.Span, children: list[Token]) -> ast.RefExpr:
        parts = tuple(str(c) for c in children if c.type == "NAME")
        return ast.RefExpr(parts, meta_span(meta))

    @_spanned
    def call(self, meta: ast.Span, children: list[Any]) -> ast.CallExpr:
        name = children[0]
        args = tuple(c for c in children[1:] if not isinstance(c, Token))
        return ast.CallExpr(str(name), args, meta_span(meta), token_span(name))

    @_spanned
    def keyword(self, meta: ast.Span, children: list[Any]) -> ast.Keyword:
        name, _, value = children
        return ast.Keyword(str(name), value, meta_span(meta), token_span(name))

    @_spanned
    def group(self, meta: ast.Span, children: list[Any]) -> Any:
        return replace(children[1], span=meta)  # the parentheses belong to the expression

    @_spanned
    def neg(self, meta: ast.Span, children: list[Any]) -> ast.NegExpr:
        return ast.NegExpr(children[1], meta_span(meta))

    @_spanned
    def _binary(self, meta: ast.Span, children: list[Any]) -> ast.BinaryExpr:
        left, op, right = children
        return ast.BinaryExpr(str(op), left, right, meta_span(meta))

    add = sub = mul = div = _binary

    # --- statements -----------------------------------------------------------------
    @_spanned
    def experiment(self, meta: ast.Span, children: list[Any]) -> ast.Experiment:
        return ast.Experiment("experiment", meta_span(meta), _string(children[1]))

    @_spanned
    def instrument_file(self, meta: ast.Span, children: list[Any]) -> ast.Instrument:
        survey = _string(children[4]) if len(children) > 3 else None
        return ast.Instrument(
            "instrument", meta_span(meta), "file", _string(children[2]), survey, sim=True
        )

    @_spanned
    def instrument_builtin(self, meta: ast.Span, children: list[Any]) -> ast.Instrument:
        return ast.Instrument(
            "instrument", meta_span(meta), "builtin", _string(children[3]), sim=True
        )

    @_spanned
    def instrument_remote(self, meta: ast.Span, children: list[Any]) -> ast.Instrument:
        return ast.Instrument("instrument", meta_span(meta), "remote", _string(children[1]))

    @_spanned
    def instrument_nion(self, meta: ast.Span, children: list[Any]) -> ast.Instrument:
        return ast.Instrument("instrument", meta_span(meta), "nion", sim=len(children) > 2)

    @_spanned
    def measure(self, meta: ast.Span, children: list[Any]) -> ast.Measure:
        return ast.Measure("measure", meta_span(meta), _word(children[1]))

    @_spanned
    def _one_quantity(self, meta: ast.Span, children: list[Any]) -> ast.QuantityStatement:
        return ast.QuantityStatement(str(children[0]), meta_span(meta), children[1])

    exposure = patch = stride = _one_quantity

    @_spanned
    def _area(self, meta: ast.Span, children: list[Any]) -> ast.Area:
        return ast.Area(str(children[0]), meta_span(meta), children[1], children[3])

    region = exclude = _area

    @_spanned
    def scalarize(self, meta: ast.Span, children: list[Any]) -> ast.Scalarize:
        return ast.Scalarize("scalarize", meta_span(meta), children[1])

    @_spanned
    def direction(self, meta: ast.Span, children: list[Any]) -> ast.Direction:
        return ast.Direction(str(children[0]), meta_span(meta))

    @_spanned
    def _named(self, meta: ast.Span, children: list[Any]) -> ast.Named:
        return ast.Named(str(children[0]), meta_span(meta), _word(children[1]), tuple(children[2:]))

    acquire = model = _named

    @_spanned
    def seed_count(self, meta: ast.Span, children: list[Any]) -> ast.SeedCount:
        count = children[2] if len(children) > 2 else None
        return ast.SeedCount("seed", meta_span(meta), _word(children[1]), count)

    @_spanned
    def seed_at(self, meta: ast.Span, children: list[Any]) -> ast.SeedAt:
        points = tuple(c for c in children if isinstance(c, ast.Point))
        return ast.SeedAt("seed", meta_span(meta), points)

    @_spanned
    def train(self, meta: ast.Span, children: list[Any]) -> ast.Train:
        return ast.Train("train", meta_span(meta), children[2])

    @_spanned
    def stop_after(self, meta: ast.Span, children: list[Any]) -> ast.StopAfter:
        return ast.StopAfter(children[1], meta_span(meta))

    @_spanned
    def stop_when(self, meta: ast.Span, children: list[Any]) -> ast.StopWhen:
        return ast.StopWhen(_word(children[1]), str(children[2]), children[3], meta_span(meta))

    @_spanned
    def stop(self, meta: ast.Span, children: list[Any]) -> ast.Stop:
        conditions = tuple(c for c in children if not isinstance(c, Token))
        return ast.Stop("stop", meta_span(meta), conditions)

    @_spanned
    def publish(self, meta: ast.Span, children: list[Any]) -> ast.Publish:
        return ast.Publish("publish", meta_span(meta), _string(children[1]))

    @_spanned
    def start(self, meta: ast.Span, children: list[Any]) -> tuple[ast.Statement, ...]:
        return tuple(c for c in children if isinstance(c, ast.Statement))
