"""Checking and lowering scalarizer expressions, and their canonical text.

`ExpressionChecker.check` turns an `ast` expression into a `plan` expression (canonical
units, no positions), reporting every problem through the statement checker so that all
of a file's errors come out in one run. `render_expr` is the canonical spelling `dkl fmt`
prints.
"""

from __future__ import annotations

from typing import Protocol

from dkl.dsl import ast
from dkl.dsl.errors import did_you_mean
from dkl.dsl.facts import InstrumentFacts
from dkl.dsl.functions import (
    CANONICAL_NAME,
    DIFFRACTION,
    FUNCTIONS,
    MODALITIES,
    REFS,
    SPECTRUM,
)
from dkl.dsl.plan import BinOp, Call, Expr, Neg, Num, Ref, Win
from dkl.dsl.units import UNITS


class Reporter(Protocol):
    def error(self, code: str, message: str, span: ast.Span | None) -> None: ...

    def warning(self, code: str, message: str, span: ast.Span | None) -> None: ...

    def of_kind(self, q: ast.Quantity, kind: str, what: str) -> float | None: ...


_NEEDS_TEXT = {
    SPECTRUM: "a spectrum (`measure eels` or `measure eds`)",
    DIFFRACTION: "diffraction patterns (`measure 4dstem`)",
}
_KIND_TEXT = {
    "index": "a peak number (1, 2, ...)",
    "energy_window": "an energy window such as `1.2 eV .. 1.6 eV`",
    "angle_window": "an angle window such as `40 mrad .. 100 mrad`",
    "angle": "a radius in mrad such as `10 mrad`",
    "scalar": "a number or an expression",
    "peak": "a peak, such as `peak(1)` or `peak(1.2 eV .. 1.6 eV)`",
    "peaks": "`peaks`",
}


class ExpressionChecker:
    def __init__(self, report: Reporter, modality: str, facts: InstrumentFacts | None) -> None:
        self.report = report
        self.needs = MODALITIES.get(modality, SPECTRUM)
        self.modality = modality
        self.facts = facts

    def check(self, node: ast.Expr) -> Expr | None:
        """The plan expression for `node`, or None after reporting why not."""
        if isinstance(node, ast.NumberExpr):
            q = node.quantity
            if q.unit is None:
                return Num(q.value)
            unit = UNITS[q.unit]
            if unit.kind not in ("energy", "angle"):
                self.report.error("E120", f"a number in a scalarizer may carry an energy or an "
                                  f"angle unit, not `{q.unit}`: write `{_num(q.value)}` or use "
                                  "eV / mrad", node.span)
                return None
            return Num(q.value * unit.factor, unit.canonical)
        if isinstance(node, ast.RefExpr):
            return self.ref(node)
        if isinstance(node, ast.NegExpr):
            operand = self.scalar(node.operand)
            return Neg(operand) if operand is not None else None
        if isinstance(node, ast.BinaryExpr):
            left, right = self.scalar(node.left), self.scalar(node.right)
            if left is None or right is None:
                return None
            return BinOp(node.op, left, right)
        return self.call(node)

    def scalar(self, node: ast.Expr) -> Expr | None:
        if isinstance(node, ast.RefExpr) and node.name == "peaks":
            self.report.error("E112", "`peaks` is only meaningful as `count(peaks)`", node.span)
            return None
        return self.check(node)

    def ref(self, node: ast.RefExpr) -> Expr | None:
        name = node.name
        if name in REFS:
            self.require(REFS[name][0], name, node.span)
            return Ref(name)
        if name == "peaks":
            return Ref(name)
        if name in FUNCTIONS:
            self.report.error("E112", f"`{name}` is a function: call it, e.g. "
                              f"`{FUNCTIONS[name].example}`", node.span)
            return None
        self.report.error("E110", f"unknown name `{name}`"
                          + did_you_mean(name, [*REFS, *FUNCTIONS]), node.span)
        return None

    def require(self, needs: str, what: str, span: ast.Span) -> None:
        if needs != self.needs and needs in _NEEDS_TEXT:
            self.report.error("E140", f"`{what}` needs {_NEEDS_TEXT[needs]}, but this experiment "
                              f"measures {self.modality}", span)

    def call(self, node: ast.CallExpr) -> Expr | None:
        fn = FUNCTIONS.get(node.fn)
        if fn is None:
            hint = did_you_mean(node.fn, FUNCTIONS)
            if not hint and node.fn == "com":
                hint = "; the centre of mass is `com.x`, `com.y`, `com.magnitude` or `com.angle`"
            self.report.error("E110", f"unknown function `{node.fn}`" + hint, node.name_span)
            return None
        self.require(fn.needs, node.fn, node.name_span)
        positional = [a for a in node.args if not isinstance(a, ast.Keyword)]
        keywords = [a for a in node.args if isinstance(a, ast.Keyword)]
        if len(positional) != len(fn.params):
            n = len(fn.params)
            extra = len(positional) - n
            if extra > 0:  # point at the arguments too many
                where = positional[n].span.to(positional[-1].span)
                fix = "remove it" if extra == 1 else f"remove the last {extra}"
            else:  # point at the closing parenthesis, where the missing arguments go
                end = node.span
                where = ast.Span(end.end_line, end.end_column - 1, end.end_line, end.end_column)
                fix = "add the missing one" if extra == -1 else f"add the {-extra} missing ones"
            self.report.error("E111", f"`{fn.name}` takes {n} argument{'s' if n != 1 else ''}, "
                              f"got {len(positional)}: {fix} (e.g. `{fn.example}`)", where)
            return None
        # check every argument, so that all of their problems are reported in one run
        args = [self.argument(fn.name, arg, kinds)
                for arg, kinds in zip(positional, fn.params, strict=True)]
        allowed = dict(fn.keywords)
        kwargs = []
        for kw in keywords:
            if kw.name not in allowed:
                takes = f"it takes `{'`, `'.join(allowed)}`" if allowed else "it takes none"
                self.report.error("E113", f"`{kw.name}` is not a keyword of `{fn.name}` ({takes})"
                                  + did_you_mean(kw.name, allowed), kw.name_span)
                return None
            kwargs.append((kw.name, self.argument(fn.name, kw.value, (allowed[kw.name],))))
        if any(a is None for a in args) or any(v is None for _, v in kwargs):
            return None
        if fn.name == "edge":
            return self.edge(node, args, dict(kwargs))  # type: ignore[arg-type]
        return Call(CANONICAL_NAME.get(fn.name, fn.name), tuple(args), tuple(kwargs))  # type: ignore[arg-type]

    def argument(self, fn: str, arg: ast.Expr | ast.Window, kinds: tuple[str, ...]
                 ) -> Expr | None:
        wanted = " or ".join(_KIND_TEXT[k] for k in kinds)
        if isinstance(arg, ast.CallExpr) and arg.fn not in FUNCTIONS:
            return self.check(arg)  # the unknown name is the problem, not the argument's kind
        if isinstance(arg, ast.Window):
            kind = next((k for k in kinds if k.endswith("_window")), None)
            if kind is None:
                self.report.error("E112", f"`{fn}` expects {wanted}, not a window", arg.span)
                return None
            return self.window(arg, "energy" if kind == "energy_window" else "angle", fn)
        if "index" in kinds and isinstance(arg, ast.NumberExpr) and arg.quantity.unit is None:
            q = arg.quantity
            if q.value != round(q.value) or q.value < 1:
                self.report.error("E130", f"peaks are counted from 1: `{q.text}` is not a peak "
                                  "number", arg.span)
                return None
            return Num(q.value)
        if "angle" in kinds and isinstance(arg, ast.NumberExpr):
            value = self.report.of_kind(arg.quantity, "angle", f"the radius of `{fn}`")
            if value is None:
                return None
            if value <= 0:
                self.report.error("E130", "the radius must be > 0 mrad", arg.span)
                return None
            self.in_range(value, value, arg.span, "mrad")
            return Num(value, "mrad")
        if "peak" in kinds:
            if isinstance(arg, ast.CallExpr) and arg.fn == "peak":
                return self.check(arg)
            self.report.error("E112", f"`{fn}` expects {wanted}", arg.span)
            return None
        if "peaks" in kinds:
            if isinstance(arg, ast.RefExpr) and arg.name == "peaks":
                return Ref("peaks")
            self.report.error("E112", f"`{fn}` expects `peaks`, as in `count(peaks)`", arg.span)
            return None
        if "scalar" in kinds:
            return self.scalar(arg)
        self.report.error("E112", f"`{fn}` expects {wanted}", arg.span)
        return None

    def window(self, w: ast.Window, kind: str, fn: str) -> Win | None:
        what = f"a window of `{fn}`"
        low = self.report.of_kind(w.low, kind, what)
        high = self.report.of_kind(w.high, kind, what)
        if low is None or high is None:
            return None
        if low >= high:
            self.report.error("E131", f"empty window: `{w.low.text}` is not below `{w.high.text}`",
                              w.span)
            return None
        if kind == "angle" and low < 0:
            self.report.error("E130", "detector radii are >= 0 mrad", w.span)
            return None
        unit = "eV" if kind == "energy" else "mrad"
        self.in_range(low, high, w.span, unit)
        return Win(low, high, unit)

    def in_range(self, low: float, high: float, span: ast.Span, unit: str) -> None:
        facts = self.facts
        if not facts or not facts.signal_range:
            return
        lo, hi = facts.signal_range
        if high < lo or low > hi:
            self.report.error("E141", f"the window lies outside what `{facts.name}` measures "
                              f"({_num(lo)} {unit} .. {_num(hi)} {unit})", span)
        elif low < lo or high > hi:
            self.report.warning("W010", f"the window reaches beyond what `{facts.name}` measures "
                                f"({_num(lo)} {unit} .. {_num(hi)} {unit})", span)

    def edge(self, node: ast.CallExpr, args: list[Expr], kwargs: dict[str, Expr]) -> Expr | None:
        signal = args[0]
        assert isinstance(signal, Win)
        background = kwargs.get("background")
        if background is None:
            width = signal.high - signal.low
            background = Win(signal.low - width, signal.low, "eV")
        assert isinstance(background, Win)
        if background.high > signal.low:
            given = next((k for k in node.args if isinstance(k, ast.Keyword)), None)
            self.report.error("E132", f"the background window must end at or below the edge "
                              f"window's start ({_num(signal.low)} eV): the power law is fitted "
                              "below the edge and extrapolated upwards",
                              given.value.span if given else node.span)
            return None
        return Call("edge", (signal,), (("background", background),))


def is_constant(expr: Expr) -> bool:
    """Does the expression ignore the measurement (numbers and arithmetic only)?"""
    if isinstance(expr, (Num, Win)):
        return True
    if isinstance(expr, Neg):
        return is_constant(expr.operand)
    if isinstance(expr, BinOp):
        return is_constant(expr.left) and is_constant(expr.right)
    if isinstance(expr, Call):
        return all(is_constant(a) for a in expr.args) and expr.fn in ("ratio", "abs", "log",
                                                                      "sqrt")
    return False


def _num(v: float) -> str:
    return f"{v:g}"


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def render_expr(node: ast.Expr | ast.Window | ast.Keyword, parent: int = 0, right: bool = False
                ) -> str:
    """Canonical text: single spaces around binary operators, minimal parentheses."""
    if isinstance(node, ast.NumberExpr):
        return render_quantity(node.quantity)
    if isinstance(node, ast.RefExpr):
        return node.name
    if isinstance(node, ast.Window):
        return f"{render_quantity(node.low)} .. {render_quantity(node.high)}"
    if isinstance(node, ast.Keyword):
        return f"{node.name}={render_expr(node.value)}"
    if isinstance(node, ast.CallExpr):
        return f"{node.fn}(" + ", ".join(render_expr(a) for a in node.args) + ")"
    if isinstance(node, ast.NegExpr):
        inner = render_expr(node.operand, 3)
        return f"-{inner}"
    prec = _PRECEDENCE[node.op]
    text = f"{render_expr(node.left, prec)} {node.op} {render_expr(node.right, prec, True)}"
    if prec < parent or (right and prec == parent):
        return f"({text})"
    return text


def render_quantity(q: ast.Quantity) -> str:
    """A number as written, with one space before its unit."""
    return q.text
