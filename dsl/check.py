"""The checker: from a syntax tree to a `Plan`, reporting every semantic problem at once.

Separate from the parser: it receives a `Program` and never sees Lark. It walks every
statement, collects all diagnostics (it does not stop at the first), converts units to
canonical ones and fills in every default. Expressions are checked in `expressions.py`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from dkl.dsl import ast, settings
from dkl.dsl.errors import Diagnostic, did_you_mean
from dkl.dsl.expressions import ExpressionChecker, is_constant, render_expr
from dkl.dsl.facts import BUILTIN, DEFAULT_BUILTIN, InstrumentFacts, Resolver
from dkl.dsl.functions import (
    MODALITIES,
)
from dkl.dsl.plan import (
    InstrumentSpec,
    Plan,
    Region,
)
from dkl.dsl.settings import ADDRESS, a_kind, keyword_span, listed
from dkl.dsl.units import NM_PER_UNIT, UNITS

_REPEATABLE = {"exclude"}


@dataclass
class CheckResult:
    """The plan (None when there are errors) and every diagnostic, in source order."""

    plan: Plan | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


class _Checker:
    def __init__(self, source: str, path: str | None, resolver: Resolver | None) -> None:
        self.source = source
        self.path = path
        self.resolver = resolver
        self.diags: list[Diagnostic] = []
        self.facts: InstrumentFacts | None = None

    # --- reporting ------------------------------------------------------------------
    def error(self, code: str, message: str, span: ast.Span | None) -> None:
        self._add("error", code, message, span)

    def warning(self, code: str, message: str, span: ast.Span | None) -> None:
        self._add("warning", code, message, span)

    def _add(self, severity: str, code: str, message: str, span: ast.Span | None) -> None:
        if span is None:
            self.diags.append(Diagnostic(severity, code, message, 1, 1, 1))
            return
        end = span.end_column if span.end_line == span.line else span.column + 1
        self.diags.append(Diagnostic(severity, code, message, span.line, span.column, end))

    # --- quantities -----------------------------------------------------------------
    def length_px(self, q: ast.Quantity, what: str) -> float | None:
        """A length in pixels; a bare number already is one."""
        if q.unit is None or q.unit == "px":
            return q.value
        unit = UNITS[q.unit]
        if unit.kind != "length":
            self.error("E120", f"{what} is a length (px, nm, A), but `{q.text}` is "
                       f"{a_kind(unit.kind)}", q.span)
            return None
        pixel = self.facts.pixel_size_nm if self.facts else None
        if not pixel:
            self.error("E123", f"`{q.text}` needs the instrument's pixel size, which is not "
                       "known here; give the length in px", q.span)
            return None
        return q.value * NM_PER_UNIT[q.unit] / pixel

    def of_kind(self, q: ast.Quantity, kind: str, what: str) -> float | None:
        """A quantity of `kind` in its canonical unit; a bare number is an error."""
        if q.unit is None:
            example = {"energy": "eV", "angle": "mrad", "time": "s", "dose": "e/A2"}[kind]
            self.error("E122", f"{what} needs a unit: write `{q.text} {example}`", q.span)
            return None
        unit = UNITS[q.unit]
        if unit.kind != kind:
            self.error("E120", f"{what} is {a_kind(kind)}, but `{q.text}` is "
                       f"{a_kind(unit.kind)}", q.span)
            return None
        return q.value * unit.factor

    def whole(self, q: ast.Quantity, what: str, minimum: int = 1) -> int | None:
        """A unitless whole number >= minimum."""
        if q.unit is not None:
            self.error("E120", f"{what} is a plain number, but `{q.text}` has a unit", q.span)
            return None
        return self.at_least(q.value, q, what, minimum)

    def at_least(self, value: float, q: ast.Quantity, what: str, minimum: int) -> int | None:
        if not math.isfinite(value) or value != round(value):
            self.error("E130", f"{what} must be a whole number, not `{q.text}`", q.span)
            return None
        if value < minimum:
            self.error("E130", f"{what} must be at least {minimum}, not `{q.text}`", q.span)
            return None
        return int(value)

    def non_negative(self, q: ast.Quantity, what: str) -> float | None:
        if q.unit is not None:
            self.error("E120", f"{what} is a plain number, but `{q.text}` has a unit", q.span)
            return None
        if q.value < 0:
            self.error("E130", f"{what} must be >= 0, not `{q.text}`", q.span)
            return None
        return q.value

    def px_window(self, w: ast.Window, axis: str, size: int | None) -> tuple[float, float] | None:
        low = self.length_px(w.low, f"the {axis} range")
        high = self.length_px(w.high, f"the {axis} range")
        if low is None or high is None:
            return None
        if low >= high:
            self.error("E131", f"empty {axis} range: `{w.low.text}` is not below `{w.high.text}`",
                       w.span)
            return None
        if low < 0 or (size is not None and high > size - 1):
            limit = f"0 px .. {size - 1} px" if size else "0 px or more"
            self.error("E142", f"the {axis} range `{w.low.text} .. {w.high.text}` leaves the "
                       f"instrument's grid ({limit})", w.span)
            return None
        return low, high

    # --- the program ----------------------------------------------------------------
    def run(self, program: ast.Program) -> Plan | None:
        for q in _quantities(program):
            if not math.isfinite(q.value):
                self.error("E130", f"`{q.text}` is too large for a number", q.span)
        by_keyword = self.statements_by_keyword(program)

        def one(keyword: str) -> ast.Statement | None:
            found = by_keyword.get(keyword)
            return found[0] if found else None

        instrument = self.instrument(one("instrument"), one("measure"))
        modality = self.modality(one("measure"), instrument)
        exposure = self.exposure(one("exposure"))
        patch = self.patch(one("patch"))
        stride = self.stride(one("stride"))
        region = self.area(one("region"))
        excludes = tuple(r for r in (self.area(s) for s in by_keyword.get("exclude", [])) if r)
        expr, expr_text = self.scalarize(one("scalarize"), modality)
        direction = one("maximize") or one("minimize")
        acquisition = settings.acquisition(self, one("acquire"))
        seeding = settings.seeding(self, one("seed"))
        model = settings.model(self, one("model"))
        train_every = settings.train(self, one("train"))
        stop = settings.stop(self, one("stop"), one("scalarize"))
        publish = settings.publish(self, one("publish"))
        title_stmt = one("experiment")
        title = title_stmt.title.value if isinstance(title_stmt, ast.Experiment) else None
        if any(d.is_error for d in self.diags) or expr is None:
            return None
        return Plan(
            source=self.source,
            sha256=hashlib.sha256(self.source.encode("utf-8")).hexdigest(),
            path=self.path,
            title=title,
            instrument=instrument,
            modality=modality,
            exposure_s=exposure,
            patch_px=patch,
            stride_px=stride,
            region=region,
            exclude=excludes,
            scalarize=expr,
            scalarize_text=expr_text,
            maximize=not (direction and direction.keyword == "minimize"),
            acquire=acquisition,
            seed=seeding,
            model=model,
            train_every=train_every,
            stop=stop,
            publish=publish,
        )

    def statements_by_keyword(self, program: ast.Program) -> dict[str, list[ast.Statement]]:
        seen: dict[str, list[ast.Statement]] = {}
        for stmt in program.statements:
            group = "direction" if stmt.keyword in ("maximize", "minimize") else stmt.keyword
            earlier = seen.get(group)
            if earlier and group not in _REPEATABLE:
                first = earlier[0]
                if group == "direction" and first.keyword != stmt.keyword:
                    msg = (f"`{stmt.keyword}` contradicts `{first.keyword}` on line "
                           f"{first.span.line}; keep one")
                else:
                    msg = (f"`{stmt.keyword}` is given twice (first on line {first.span.line}); "
                           "keep one")
                self.error("E102", msg, keyword_span(stmt))
                continue
            seen.setdefault(group, []).append(stmt)
        if "direction" in seen:
            seen[seen["direction"][0].keyword] = seen["direction"]
        return seen

    def instrument(self, stmt: ast.Statement | None, measure: ast.Statement | None
                   ) -> InstrumentSpec:
        if not isinstance(stmt, ast.Instrument):
            wanted = measure.modality.name if isinstance(measure, ast.Measure) else "eels"
            name = DEFAULT_BUILTIN.get(wanted, "plasmonic")
            self.facts = BUILTIN[name] if wanted in DEFAULT_BUILTIN else None
            return InstrumentSpec("builtin", name)
        if stmt.kind == "builtin":
            assert stmt.target is not None
            name = stmt.target.value
            if name not in BUILTIN:
                self.error("E150", f"unknown built-in dataset `{name}`"
                           + did_you_mean(name, BUILTIN) + f" (built-ins: {listed(BUILTIN)})",
                           stmt.target.span)
                return InstrumentSpec("builtin", name)
            self.facts = BUILTIN[name]
            return InstrumentSpec("builtin", name)
        if stmt.kind == "file":
            assert stmt.target is not None
            path = self.resolve_path(stmt.target)
            survey = self.resolve_path(stmt.survey) if stmt.survey else None
            spec = InstrumentSpec("file", name=Path(path).name, path=path, survey=survey)
            self.facts = self.resolve(spec, stmt.target.span)
            return spec
        if stmt.kind == "remote":
            assert stmt.target is not None
            address = stmt.target.value
            spec = InstrumentSpec("remote", name=address, address=address)
            if not ADDRESS.match(address):
                self.error("E133", f"`{address}` is not a ZeroMQ address "
                           "(e.g. \"tcp://127.0.0.1:5710\")", stmt.target.span)
            else:  # known only when the caller connects (`dkl check --connect`)
                self.facts = self.resolve(spec, stmt.target.span)
            return spec
        return InstrumentSpec("nion", name="nion-sim" if stmt.sim else "nion")

    def resolve_path(self, s: ast.String) -> str:
        path = Path(s.value)
        if not path.is_absolute() and self.path:
            path = Path(self.path).resolve().parent / path
        if not path.exists():
            # say where we looked when it is not where the user would (their working folder)
            elsewhere = path.resolve() != Path(s.value).resolve()
            self.error("E143", f"dataset file not found: `{s.value}`"
                       + (f" (looked for {path}, next to the .dkl file)" if elsewhere else ""),
                       s.span)
        return str(path)

    def resolve(self, spec: InstrumentSpec, span: ast.Span) -> InstrumentFacts | None:
        if self.resolver is None or any(d.code == "E143" for d in self.diags):
            return None
        try:
            return self.resolver(spec)
        except (OSError, ValueError) as err:
            if spec.kind == "remote":
                self.error("E145", f"cannot reach the instrument at `{spec.address}`: {err}",
                           span)
            else:
                self.error("E143", f"cannot use `{spec.path}` as a dataset: {err}", span)
            return None

    def modality(self, stmt: ast.Statement | None, instrument: InstrumentSpec) -> str:
        facts = self.facts
        if not isinstance(stmt, ast.Measure):
            if facts and facts.modality in MODALITIES:
                return facts.modality
            return "eels"
        name = stmt.modality.name
        if name not in MODALITIES:
            self.error("E160", f"unknown modality `{name}`" + did_you_mean(name, MODALITIES)
                       + " (eels, eds or 4dstem)", stmt.modality.span)
            return "eels"
        builtin = instrument.kind == "builtin"
        if facts and not (_compatible(facts.modality, name) and (not builtin
                                                                 or facts.modality == name)):
            what = {"builtin": "the built-in dataset", "remote": "the instrument"}.get(
                instrument.kind, "the dataset")
            self.error("E144", f"{what} `{facts.name}` holds {facts.modality} data, not {name}: "
                       f"write `measure {facts.modality}` or choose another instrument",
                       stmt.modality.span)
        elif builtin and name not in DEFAULT_BUILTIN:
            self.error("E144", f"no built-in dataset holds {name} data: replay a recorded one "
                       "with `instrument sim \"FILE\"`", stmt.modality.span)
        return name

    def exposure(self, stmt: ast.Statement | None) -> float | None:
        if not isinstance(stmt, ast.QuantityStatement):
            return None
        value = self.of_kind(stmt.quantity, "time", "the exposure")
        if value is not None and value <= 0:
            self.error("E130", "the exposure must be longer than 0 s", stmt.quantity.span)
        return value

    def patch(self, stmt: ast.Statement | None) -> int:
        if not isinstance(stmt, ast.QuantityStatement):
            return 16
        q = stmt.quantity
        px = self.length_px(q, "the patch")
        if px is None:
            return 16
        size = self.at_least(round(px, 6), q, "the patch (in px)", 3)
        shape = self.facts.shape if self.facts else None
        if size is not None and shape and size > min(shape):
            self.error("E142", f"the patch ({size} px) is larger than the {shape[1]}×{shape[0]} "
                       "px survey", q.span)
        return size or 16

    def stride(self, stmt: ast.Statement | None) -> int:
        if not isinstance(stmt, ast.QuantityStatement):
            return 1
        px = self.length_px(stmt.quantity, "the stride")
        if px is None:
            return 1
        return self.at_least(round(px, 6), stmt.quantity, "the stride (in px)", 1) or 1

    def area(self, stmt: ast.Statement | None) -> Region | None:
        if not isinstance(stmt, ast.Area):
            return None
        shape = self.facts.shape if self.facts else None
        xs = self.px_window(stmt.x, "x", shape[1] if shape else None)
        ys = self.px_window(stmt.y, "y", shape[0] if shape else None)
        if xs is None or ys is None:
            return None
        return Region(xs[0], xs[1], ys[0], ys[1])

    def scalarize(self, stmt: ast.Statement | None, modality: str) -> tuple[object, str]:
        if not isinstance(stmt, ast.Scalarize):
            start = "the file is empty" if not self.source.strip() else "missing `scalarize`"
            self.error("E103", f"{start}: say what to measure, e.g. `scalarize peak(1)`", None)
            return None, ""
        checker = ExpressionChecker(self, modality, self.facts)
        expr = checker.scalar(stmt.expr)
        if expr is not None and is_constant(expr):
            self.error("E114", f"`{render_expr(stmt.expr)}` is a constant: the scalarizer must "
                       "measure something, e.g. `peak(1)` or `com.magnitude`", stmt.expr.span)
            return None, ""
        return expr, render_expr(stmt.expr)



def _compatible(has: str, wanted: str) -> bool:
    if has == "spectrum":
        return wanted in ("eels", "eds")
    return has == wanted or {has, wanted} == {"eels", "eds"}


def _quantities(program: ast.Program) -> list[ast.Quantity]:
    """Every number written in the program (an iterative walk over the syntax tree)."""
    found, stack = [], list(program.statements)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Quantity):
            found.append(node)
        elif isinstance(node, tuple):
            stack.extend(node)
        elif is_dataclass(node):
            stack.extend(getattr(node, f.name) for f in fields(node) if f.name != "span")
    return found


def check(program: ast.Program, source: str, path: str | None = None,
          resolver: Resolver | None = None) -> CheckResult:
    """Check a parsed program and compile it to a `Plan`, collecting every diagnostic."""
    checker = _Checker(source, path, resolver)
    plan = checker.run(program)
    diags = sorted(checker.diags, key=lambda d: (d.line, d.column))
    return CheckResult(plan, diags)
