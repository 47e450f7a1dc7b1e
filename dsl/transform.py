"""Turn Lark's parse tree into the typed syntax tree of `ast.py`.

One of the two modules that import Lark. Every node gets the span of the text it came
from, so that diagnostics can point at the offending argument.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Token, Transformer, v_args

from dkl.dsl import ast

_DIMENSIONED = re.compile(r"^(?P<num>[0-9.eE+-]+?)[ \t]*(?P<unit>keV|eV|mrad|px|nm|ms|min|s|A|e/A2)$")


def token_span(tok: Token) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line, tok.end_column)


def meta_span(meta: Any) -> ast.Span:
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _string(tok: Token) -> ast.String:
    raw = str(tok)[1:-1]
    value = re.sub(r"\\(.)", r"\1", raw)
    return ast.String(value, token_span(tok))


def _word(tok: Token) -> ast.Word:
    return ast.Word(str(tok), token_span(tok))


@v_args(meta=True)
class ToAst(Transformer):
    """Bottom-up construction of `ast` nodes; tokens that carry no meaning are dropped."""

    # --- values ---------------------------------------------------------------------
    def quantity(self, meta: Any, children: list[Token]) -> ast.Quantity:
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

    def window(self, meta: Any, children: list[Any]) -> ast.Window:
        return ast.Window(children[0], children[2], meta_span(meta))

    def point(self, meta: Any, children: list[Any]) -> ast.Point:
        return ast.Point(children[1], children[3], meta_span(meta))

    def word(self, meta: Any, children: list[Token]) -> ast.Word:
        return _word(children[0])

    def list(self, meta: Any, children: list[Any]) -> ast.ListValue:
        items = tuple(c for c in children if not isinstance(c, Token) or c.type == "STRING")
        items = tuple(_string(c) if isinstance(c, Token) else c for c in items)
        return ast.ListValue(items, meta_span(meta))

    def setting(self, meta: Any, children: list[Any]) -> ast.Setting:
        name, _, value = children
        if isinstance(value, Token):
            value = _string(value)
        return ast.Setting(str(name), value, meta_span(meta), token_span(name))

    # --- expressions ----------------------------------------------------------------
    def number(self, meta: Any, children: list[Token]) -> ast.NumberExpr:
        q = self.quantity(meta, children)
        return ast.NumberExpr(q, q.span)

    def ref(self, meta: Any, children: list[Token]) -> ast.RefExpr:
        parts = tuple(str(c) for c in children if c.type == "NAME")
        return ast.RefExpr(parts, meta_span(meta))

    def call(self, meta: Any, children: list[Any]) -> ast.CallExpr:
        name = children[0]
        args = tuple(c for c in children[1:] if not isinstance(c, Token))
        return ast.CallExpr(str(name), args, meta_span(meta), token_span(name))

    def keyword(self, meta: Any, children: list[Any]) -> ast.Keyword:
        name, _, value = children
        return ast.Keyword(str(name), value, meta_span(meta), token_span(name))

    def group(self, meta: Any, children: list[Any]) -> Any:
        return children[1]

    def neg(self, meta: Any, children: list[Any]) -> ast.NegExpr:
        return ast.NegExpr(children[1], meta_span(meta))

    def _binary(self, meta: Any, children: list[Any]) -> ast.BinaryExpr:
        left, op, right = children
        return ast.BinaryExpr(str(op), left, right, meta_span(meta))

    add = sub = mul = div = _binary

    # --- statements -----------------------------------------------------------------
    def experiment(self, meta: Any, children: list[Any]) -> ast.Experiment:
        return ast.Experiment("experiment", meta_span(meta), _string(children[1]))

    def instrument_file(self, meta: Any, children: list[Any]) -> ast.Instrument:
        survey = _string(children[4]) if len(children) > 3 else None
        return ast.Instrument(
            "instrument", meta_span(meta), "file", _string(children[2]), survey, sim=True
        )

    def instrument_builtin(self, meta: Any, children: list[Any]) -> ast.Instrument:
        return ast.Instrument(
            "instrument", meta_span(meta), "builtin", _string(children[3]), sim=True
        )

    def instrument_remote(self, meta: Any, children: list[Any]) -> ast.Instrument:
        return ast.Instrument("instrument", meta_span(meta), "remote", _string(children[1]))

    def instrument_nion(self, meta: Any, children: list[Any]) -> ast.Instrument:
        return ast.Instrument("instrument", meta_span(meta), "nion", sim=len(children) > 2)

    def measure(self, meta: Any, children: list[Any]) -> ast.Measure:
        return ast.Measure("measure", meta_span(meta), _word(children[1]))

    def _one_quantity(self, meta: Any, children: list[Any]) -> ast.QuantityStatement:
        return ast.QuantityStatement(str(children[0]), meta_span(meta), children[1])

    exposure = patch = stride = _one_quantity

    def _area(self, meta: Any, children: list[Any]) -> ast.Area:
        return ast.Area(str(children[0]), meta_span(meta), children[1], children[3])

    region = exclude = _area

    def scalarize(self, meta: Any, children: list[Any]) -> ast.Scalarize:
        return ast.Scalarize("scalarize", meta_span(meta), children[1])

    def direction(self, meta: Any, children: list[Any]) -> ast.Direction:
        return ast.Direction(str(children[0]), meta_span(meta))

    def _named(self, meta: Any, children: list[Any]) -> ast.Named:
        return ast.Named(str(children[0]), meta_span(meta), _word(children[1]), tuple(children[2:]))

    acquire = model = _named

    def seed_count(self, meta: Any, children: list[Any]) -> ast.SeedCount:
        count = children[2] if len(children) > 2 else None
        return ast.SeedCount("seed", meta_span(meta), _word(children[1]), count)

    def seed_at(self, meta: Any, children: list[Any]) -> ast.SeedAt:
        points = tuple(c for c in children if isinstance(c, ast.Point))
        return ast.SeedAt("seed", meta_span(meta), points)

    def train(self, meta: Any, children: list[Any]) -> ast.Train:
        return ast.Train("train", meta_span(meta), children[2])

    def stop_after(self, meta: Any, children: list[Any]) -> ast.StopAfter:
        return ast.StopAfter(children[1], meta_span(meta))

    def stop_when(self, meta: Any, children: list[Any]) -> ast.StopWhen:
        return ast.StopWhen(_word(children[1]), str(children[2]), children[3], meta_span(meta))

    def stop(self, meta: Any, children: list[Any]) -> ast.Stop:
        conditions = tuple(c for c in children if not isinstance(c, Token))
        return ast.Stop("stop", meta_span(meta), conditions)

    def publish(self, meta: Any, children: list[Any]) -> ast.Publish:
        return ast.Publish("publish", meta_span(meta), _string(children[1]))

    def start(self, meta: Any, children: list[Any]) -> tuple[ast.Statement, ...]:
        return tuple(c for c in children if isinstance(c, ast.Statement))
