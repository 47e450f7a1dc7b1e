"""The checker: from a syntax tree to a `Plan`, reporting every semantic problem at once.

Separate from the parser: it receives a `Program` and never sees Lark. It walks every
statement, collects all diagnostics (it does not stop at the first), converts units to
canonical ones and fills in every default. Expressions are checked in `expressions.py`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from dkl.dsl import ast
from dkl.dsl.errors import Diagnostic, did_you_mean
from dkl.dsl.expressions import ExpressionChecker, render_expr
from dkl.dsl.facts import BUILTIN, DEFAULT_BUILTIN, InstrumentFacts, Resolver
from dkl.dsl.functions import (
    ACQUISITIONS,
    KERNELS,
    MODALITIES,
    PRECISIONS,
    SEED_KINDS,
    STOP_QUANTITIES,
)
from dkl.dsl.plan import (
    Acquisition,
    InstrumentSpec,
    ModelSpec,
    Plan,
    Region,
    Seeding,
    StopWhen,
)
from dkl.dsl.units import NM_PER_UNIT, UNITS

DEFAULT_STOP = 200
_ADDRESS = re.compile(r"^(tcp://[A-Za-z0-9.\-\[\]:*]+:[0-9]+|ipc://.+|inproc://.+)$")
_REPEATABLE = {"exclude"}
_MODEL_SETTINGS = ("embed", "hidden", "kernel", "steps", "lr", "precision")


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
                       f"{_a(unit.kind)}", q.span)
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
            self.error("E120", f"{what} is {_a(kind)}, but `{q.text}` is {_a(unit.kind)}", q.span)
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
        acquisition = self.acquisition(one("acquire"))
        seeding = self.seeding(one("seed"))
        model = self.model(one("model"))
        train_every = self.train(one("train"))
        stop = self.stop(one("stop"), one("scalarize"))
        publish = self.publish(one("publish"))
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
                    msg = f"`{stmt.keyword}` contradicts `{first.keyword}` on line {first.span.line}"
                else:
                    msg = (f"`{stmt.keyword}` is given twice (first on line {first.span.line}); "
                           "keep one")
                self.error("E102", msg, _keyword_span(stmt))
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
                           + did_you_mean(name, BUILTIN) + f" (built-ins: {_list(BUILTIN)})",
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
            if not _ADDRESS.match(address):
                self.error("E133", f"`{address}` is not a ZeroMQ address "
                           "(e.g. \"tcp://127.0.0.1:5710\")", stmt.target.span)
            return InstrumentSpec("remote", name=address, address=address)
        return InstrumentSpec("nion", name="nion-sim" if stmt.sim else "nion")

    def resolve_path(self, s: ast.String) -> str:
        path = Path(s.value)
        if not path.is_absolute() and self.path:
            path = Path(self.path).resolve().parent / path
        if not path.exists():
            self.error("E143", f"dataset file not found: `{s.value}`"
                       + (f" (looked for {path})" if str(path) != s.value else ""), s.span)
        return str(path)

    def resolve(self, spec: InstrumentSpec, span: ast.Span) -> InstrumentFacts | None:
        if self.resolver is None or any(d.code == "E143" for d in self.diags):
            return None
        try:
            return self.resolver(spec)
        except (OSError, ValueError) as err:
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
        if facts and not _compatible(facts.modality, name):
            self.error("E144", f"`{facts.name}` measures {facts.modality}, not {name}",
                       stmt.modality.span)
        elif instrument.kind == "builtin" and name not in DEFAULT_BUILTIN:
            self.error("E144", f"no built-in dataset measures {name}; name an instrument "
                       "(e.g. `instrument sim \"my_eds.hspy\"`)", stmt.modality.span)
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
            self.error("E142", f"a {size} px patch is larger than the {shape[1]}×{shape[0]} px "
                       "survey", q.span)
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
            self.error("E103", "missing `scalarize`: say what to measure, e.g. "
                       "`scalarize peak(1)`", None)
            return None, ""
        checker = ExpressionChecker(self, modality, self.facts)
        expr = checker.check(stmt.expr)
        return expr, render_expr(stmt.expr)

    def acquisition(self, stmt: ast.Statement | None) -> Acquisition:
        if not isinstance(stmt, ast.Named):
            return Acquisition()
        name = stmt.name.name.lower()
        if name not in ACQUISITIONS:
            self.error("E150", f"unknown acquisition function `{stmt.name.name}`"
                       + did_you_mean(stmt.name.name, ["EI", "PI", "UCB", "uncertainty",
                                                       "thompson", "random"])
                       + " (EI, PI, UCB, uncertainty, thompson or random)", stmt.name.span)
            return Acquisition()
        values: dict[str, float] = {}
        allowed = ACQUISITIONS[name]
        for s in stmt.settings:
            if s.name not in allowed:
                takes = f"it takes {_list(allowed)}" if allowed else "it takes no settings"
                self.error("E161", f"`{s.name}` is not a setting of `{stmt.name.name}` "
                           f"({takes})" + did_you_mean(s.name, allowed), s.name_span)
                continue
            if not isinstance(s.value, ast.Quantity):
                self.error("E112", f"`{s.name}` takes a number", s.value.span)
                continue
            value = (self.length_px(s.value, "the penalty radius") if s.name == "penalty"
                     else self.non_negative(s.value, f"`{s.name}`"))
            if value is not None and value < 0:
                self.error("E130", f"`{s.name}` must be >= 0", s.value.span)
            elif value is not None:
                values[s.name] = value
        return Acquisition(name, values.get("xi", 0.01), values.get("beta", 4.0),
                           values.get("penalty", 0.0))

    def seeding(self, stmt: ast.Statement | None) -> Seeding:
        if isinstance(stmt, ast.SeedAt):
            shape = self.facts.shape if self.facts else None
            points = []
            for p in stmt.points:
                x, y = self.length_px(p.x, "a seed point"), self.length_px(p.y, "a seed point")
                if x is None or y is None:
                    continue
                inside = x >= 0 and y >= 0 and (not shape or (x < shape[1] and y < shape[0]))
                if not inside:
                    grid = f"{shape[1]}×{shape[0]}" if shape else "the"
                    self.error("E142", f"the seed point ({p.x.text}, {p.y.text}) is outside "
                               f"the {grid} grid", p.span)
                    continue
                points.append((float(round(x)), float(round(y))))
            return Seeding("at", len(points), tuple(points))
        if not isinstance(stmt, ast.SeedCount):
            return Seeding()
        kind = stmt.kind.name
        if kind not in SEED_KINDS:
            self.error("E151", f"unknown seeding `{kind}`" + did_you_mean(kind, [*SEED_KINDS, "at"])
                       + " (random N, grid N or at (x, y), ...)", stmt.kind.span)
            return Seeding()
        n = self.whole(stmt.count, "the number of seed points") if stmt.count else 10
        return Seeding(kind, n or 10)

    def model(self, stmt: ast.Statement | None) -> ModelSpec:
        if not isinstance(stmt, ast.Named):
            return ModelSpec()
        if stmt.name.name != "dkl":
            self.error("E151", f"unknown model `{stmt.name.name}`"
                       + did_you_mean(stmt.name.name, ["dkl"]) + " (the model is `dkl`)",
                       stmt.name.span)
        spec = ModelSpec()
        values: dict[str, object] = {}
        for s in stmt.settings:
            if s.name not in _MODEL_SETTINGS:
                self.error("E113", f"`{s.name}` is not a model setting"
                           + did_you_mean(s.name, _MODEL_SETTINGS)
                           + f" (settings: {_list(_MODEL_SETTINGS)})", s.name_span)
                continue
            value = self.model_setting(s)
            if value is not None:
                values[s.name] = value
        return ModelSpec(
            spec.name,
            int(values.get("embed", spec.embed)),  # type: ignore[call-overload]
            tuple(values.get("hidden", spec.hidden)),  # type: ignore[arg-type]
            str(values.get("kernel", spec.kernel)),
            int(values.get("steps", spec.steps)),  # type: ignore[call-overload]
            float(values.get("lr", spec.lr)),  # type: ignore[arg-type]
            str(values.get("precision", spec.precision)),
        )

    def model_setting(self, s: ast.Setting) -> object:
        v = s.value
        if s.name in ("kernel", "precision"):
            choices = KERNELS if s.name == "kernel" else PRECISIONS
            if not isinstance(v, ast.Word) or v.name not in choices:
                shown = v.name if isinstance(v, ast.Word) else "that"
                self.error("E151", f"unknown {s.name} `{shown}`" + (
                    did_you_mean(shown, choices) if isinstance(v, ast.Word) else "")
                    + f" ({_list(choices)})", v.span)
                return None
            return v.name
        if s.name == "hidden":
            if not isinstance(v, ast.ListValue) or not v.items:
                self.error("E112", "`hidden` takes a list of layer widths, e.g. [64, 64]", v.span)
                return None
            widths = []
            for item in v.items:
                if not isinstance(item, ast.Quantity):
                    self.error("E112", "a layer width is a whole number", item.span)
                    return None
                w = self.whole(item, "a layer width")
                if w is None:
                    return None
                widths.append(w)
            return tuple(widths)
        if not isinstance(v, ast.Quantity):
            self.error("E112", f"`{s.name}` takes a number", v.span)
            return None
        if s.name == "lr":
            if v.unit is not None or not v.value > 0:
                self.error("E130", f"the learning rate must be a number > 0, not `{v.text}`",
                           v.span)
                return None
            return v.value
        return self.whole(v, f"`{s.name}`")

    def train(self, stmt: ast.Statement | None) -> int:
        if not isinstance(stmt, ast.Train):
            return 1
        return self.whole(stmt.every, "the training cadence") or 1

    def stop(self, stmt: ast.Statement | None, anchor: ast.Statement | None
             ) -> tuple[StopWhen, ...]:
        if not isinstance(stmt, ast.Stop):
            self.warning("W001", f"no `stop` statement: the run stops after {DEFAULT_STOP} "
                         f"measurements (say `stop after {DEFAULT_STOP}` to silence this)",
                         _keyword_span(anchor) if anchor else None)
            return (StopWhen("after", float(DEFAULT_STOP)),)
        conditions: list[StopWhen] = []
        for c in stmt.conditions:
            cond = self.stop_condition(c)
            if cond:
                conditions.append(cond)
        bounded = any(c.kind in ("after", "time", "dose") for c in conditions)
        if conditions and not bounded:
            self.warning("W002", "this condition may never hold: the run also stops after "
                         f"{DEFAULT_STOP} measurements (add `or after N` to choose)", stmt.span)
            conditions.append(StopWhen("after", float(DEFAULT_STOP)))
        return tuple(conditions)

    def stop_condition(self, c: ast.StopAfter | ast.StopWhen) -> StopWhen | None:
        if isinstance(c, ast.StopAfter):
            q = c.amount
            if q.unit is None:
                n = self.whole(q, "the number of measurements")
                return StopWhen("after", float(n)) if n else None
            seconds = self.of_kind(q, "time", "`stop after`")
            if seconds is not None and seconds <= 0:
                self.error("E130", "the time limit must be longer than 0 s", q.span)
                return None
            return StopWhen("time", seconds) if seconds is not None else None
        name = c.quantity.name
        if name not in STOP_QUANTITIES:
            self.error("E152", f"cannot stop on `{name}`" + did_you_mean(name, STOP_QUANTITIES)
                       + " (uncertainty, best or dose)", c.quantity.span)
            return None
        if name == "uncertainty" and c.op not in ("<", "<="):
            self.error("E153", "uncertainty shrinks as the run goes on: write "
                       f"`stop when uncertainty < {c.threshold.text}`", c.span)
            return None
        if name == "dose":
            if c.op not in (">", ">="):
                self.error("E153", "dose grows as the run goes on: write "
                           f"`stop when dose > {c.threshold.text}`", c.span)
                return None
            value = self.of_kind(c.threshold, "dose", "the dose limit")
            return StopWhen("dose", value, c.op) if value is not None else None
        if c.threshold.unit is not None and UNITS[c.threshold.unit].kind in ("length", "dose",
                                                                              "time"):
            self.error("E120", f"`{name}` is in the scalar's own units; `{c.threshold.text}` "
                       "cannot be one", c.threshold.span)
            return None
        value = c.threshold.value * (UNITS[c.threshold.unit].factor if c.threshold.unit else 1)
        if name == "uncertainty" and value <= 0:
            self.error("E130", "the uncertainty threshold must be > 0", c.threshold.span)
            return None
        return StopWhen(name, value, c.op)

    def publish(self, stmt: ast.Statement | None) -> str | None:
        if not isinstance(stmt, ast.Publish):
            return None
        if not _ADDRESS.match(stmt.address.value):
            self.error("E133", f"`{stmt.address.value}` is not a ZeroMQ address "
                       "(e.g. \"tcp://127.0.0.1:5702\")", stmt.address.span)
        return stmt.address.value


def _keyword_span(stmt: ast.Statement) -> ast.Span:
    s = stmt.span
    return ast.Span(s.line, s.column, s.line, s.column + len(stmt.keyword))


def _compatible(has: str, wanted: str) -> bool:
    if has == "spectrum":
        return wanted in ("eels", "eds")
    return has == wanted or {has, wanted} == {"eels", "eds"}


def _a(kind: str) -> str:
    return {"energy": "an energy", "angle": "an angle", "length": "a length",
            "time": "a time", "dose": "a dose"}.get(kind, kind)


def _list(names: object) -> str:
    return ", ".join(f"`{n}`" for n in names)  # type: ignore[attr-defined]


def check(program: ast.Program, source: str, path: str | None = None,
          resolver: Resolver | None = None) -> CheckResult:
    """Check a parsed program and compile it to a `Plan`, collecting every diagnostic."""
    checker = _Checker(source, path, resolver)
    plan = checker.run(program)
    diags = sorted(checker.diags, key=lambda d: (d.line, d.column))
    return CheckResult(plan, diags)
