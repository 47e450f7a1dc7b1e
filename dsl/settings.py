"""Checking the run-control statements: acquisition, seeding, model, training, stop, publish.

Split from `check.py` (which handles the instrument, the grid and the scalarizer); each
function takes the statement checker, reports through it, and returns the plan section
with every default filled in.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dkl.dsl import ast
from dkl.dsl.errors import did_you_mean
from dkl.dsl.functions import ACQUISITIONS, KERNELS, PRECISIONS, SEED_KINDS, STOP_QUANTITIES
from dkl.dsl.plan import DEFAULT_SEED_POINTS, Acquisition, ModelSpec, Seeding, StopWhen
from dkl.dsl.units import UNITS

if TYPE_CHECKING:
    from dkl.dsl.check import _Checker

DEFAULT_STOP = 200
ADDRESS = re.compile(r"^(tcp://[A-Za-z0-9.\-\[\]:*]+:[0-9]+|ipc://.+|inproc://.+)$")
MODEL_SETTINGS = ("embed", "hidden", "kernel", "steps", "lr", "precision", "linear")


def a_kind(kind: str) -> str:
    """`an energy`, `a time`, ...: the kind of a unit with its article."""
    return {"energy": "an energy", "angle": "an angle", "length": "a length",
            "time": "a time", "dose": "a dose"}.get(kind, kind)


def listed(names: object) -> str:
    return ", ".join(f"`{n}`" for n in names)  # type: ignore[attr-defined]


def keyword_span(stmt: ast.Statement) -> ast.Span:
    """The span of a statement's leading keyword."""
    s = stmt.span
    return ast.Span(s.line, s.column, s.line, s.column + len(stmt.keyword))


def acquisition(c: _Checker, stmt: ast.Statement | None) -> Acquisition:
    if not isinstance(stmt, ast.Named):
        return Acquisition()
    name = stmt.name.name.lower()
    if name not in ACQUISITIONS:
        c.error("E150", f"unknown acquisition function `{stmt.name.name}`"
                   + did_you_mean(stmt.name.name, ["EI", "PI", "UCB", "uncertainty",
                                                   "thompson", "random"])
                   + " (EI, PI, UCB, uncertainty, thompson or random)", stmt.name.span)
        return Acquisition()
    values: dict[str, float] = {}
    allowed = ACQUISITIONS[name]
    for s in stmt.settings:
        if s.name not in allowed:
            takes = f"it takes {listed(allowed)}" if allowed else "it takes no settings"
            c.error("E161", f"`{s.name}` is not a setting of `{stmt.name.name}` "
                       f"({takes})" + did_you_mean(s.name, allowed), s.name_span)
            continue
        if not isinstance(s.value, ast.Quantity):
            c.error("E112", f"`{s.name}` takes a number", s.value.span)
            continue
        value = (c.length_px(s.value, "the penalty radius") if s.name == "penalty"
                 else c.non_negative(s.value, f"`{s.name}`"))
        if value is not None and value < 0:
            c.error("E130", f"`{s.name}` must be >= 0", s.value.span)
        elif value is not None:
            values[s.name] = value
    return Acquisition(name, values.get("xi", 0.01), values.get("beta", 4.0),
                       values.get("penalty", 0.0))


def seeding(c: _Checker, stmt: ast.Statement | None) -> Seeding:
    if isinstance(stmt, ast.SeedAt):
        shape = c.facts.shape if c.facts else None
        points = []
        for p in stmt.points:
            x, y = c.length_px(p.x, "a seed point"), c.length_px(p.y, "a seed point")
            if x is None or y is None:
                continue
            inside = x >= 0 and y >= 0 and (not shape or (x < shape[1] and y < shape[0]))
            if not inside:
                grid = f"{shape[1]}×{shape[0]}" if shape else "the"
                c.error("E142", f"the seed point ({p.x.text}, {p.y.text}) is outside "
                           f"the {grid} grid", p.span)
                continue
            points.append((float(round(x)), float(round(y))))
        return Seeding("at", len(points), tuple(points))
    if not isinstance(stmt, ast.SeedCount):
        return Seeding()
    kind = stmt.kind.name
    if kind not in SEED_KINDS:
        c.error("E151", f"unknown seeding `{kind}`" + did_you_mean(kind, [*SEED_KINDS, "at"])
                   + " (random N, grid N or at (x, y), ...)", stmt.kind.span)
        return Seeding()
    n = c.whole(stmt.count, "the number of seed points") if stmt.count else None
    return Seeding(kind, n or DEFAULT_SEED_POINTS)


def model(c: _Checker, stmt: ast.Statement | None) -> ModelSpec:
    if not isinstance(stmt, ast.Named):
        return ModelSpec()
    if stmt.name.name != "dkl":
        c.error("E151", f"unknown model `{stmt.name.name}`"
                   + did_you_mean(stmt.name.name, ["dkl"]) + " (the model is `dkl`)",
                   stmt.name.span)
    spec = ModelSpec()
    values: dict[str, object] = {}
    for s in stmt.settings:
        if s.name not in MODEL_SETTINGS:
            c.error("E113", f"`{s.name}` is not a model setting"
                       + did_you_mean(s.name, MODEL_SETTINGS)
                       + f" (settings: {listed(MODEL_SETTINGS)})", s.name_span)
            continue
        value = model_setting(c, s)
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
        int(values.get("linear", spec.linear)),  # type: ignore[call-overload]
    )


def model_setting(c: _Checker, s: ast.Setting) -> object:
    v = s.value
    if s.name in ("kernel", "precision"):
        choices = KERNELS if s.name == "kernel" else PRECISIONS
        if not isinstance(v, ast.Word) or v.name not in choices:
            shown = v.name if isinstance(v, ast.Word) else "that"
            c.error("E151", f"unknown {s.name} `{shown}`" + (
                did_you_mean(shown, choices) if isinstance(v, ast.Word) else "")
                + f" ({listed(choices)})", v.span)
            return None
        return v.name
    if s.name == "hidden":
        if not isinstance(v, ast.ListValue) or not v.items:
            c.error("E112", "`hidden` takes a list of layer widths, e.g. [64, 64]", v.span)
            return None
        widths = []
        for item in v.items:
            if not isinstance(item, ast.Quantity):
                c.error("E112", "a layer width is a whole number", item.span)
                return None
            w = c.whole(item, "a layer width")
            if w is None:
                return None
            widths.append(w)
        return tuple(widths)
    if not isinstance(v, ast.Quantity):
        c.error("E112", f"`{s.name}` takes a number", v.span)
        return None
    if s.name == "lr":
        if v.unit is not None or not v.value > 0:
            c.error("E130", f"the learning rate must be a number > 0, not `{v.text}`",
                       v.span)
            return None
        return v.value
    return c.whole(v, f"`{s.name}`", minimum=0 if s.name == "linear" else 1)


def train(c: _Checker, stmt: ast.Statement | None) -> int:
    if not isinstance(stmt, ast.Train):
        return 1
    return c.whole(stmt.every, "the training cadence") or 1


def stop(c: _Checker, stmt: ast.Statement | None, anchor: ast.Statement | None
         ) -> tuple[StopWhen, ...]:
    if not isinstance(stmt, ast.Stop):
        if anchor is None:  # E103 already says what is missing; one message is enough
            return (StopWhen("after", float(DEFAULT_STOP)),)
        c.warning("W001", f"no `stop` statement: the run stops after {DEFAULT_STOP} "
                     f"measurements (say `stop after {DEFAULT_STOP}` to silence this)",
                     keyword_span(anchor) if anchor else None)
        return (StopWhen("after", float(DEFAULT_STOP)),)
    conditions: list[StopWhen] = []
    for condition in stmt.conditions:
        compiled = stop_condition(c, condition)
        if compiled:
            conditions.append(compiled)
    bounded = any(c.kind in ("after", "time", "dose") for c in conditions)
    if conditions and not bounded:
        c.warning("W002", "this condition may never hold: the run also stops after "
                     f"{DEFAULT_STOP} measurements (add `or after N` to choose)", stmt.span)
        conditions.append(StopWhen("after", float(DEFAULT_STOP)))
    return tuple(conditions)


def stop_condition(c: _Checker, cond: ast.StopAfter | ast.StopWhen) -> StopWhen | None:
    if isinstance(cond, ast.StopAfter):
        q = cond.amount
        if q.unit is None:
            n = c.whole(q, "the number of measurements")
            return StopWhen("after", float(n)) if n else None
        if UNITS[q.unit].kind != "time":
            c.error("E120", "`stop after` takes a number of measurements or a time "
                       f"(`30 min`), but `{q.text}` is {a_kind(UNITS[q.unit].kind)}", q.span)
            return None
        seconds = c.of_kind(q, "time", "`stop after`")
        if seconds is not None and seconds <= 0:
            c.error("E130", "the time limit must be longer than 0 s", q.span)
            return None
        return StopWhen("time", seconds) if seconds is not None else None
    name = cond.quantity.name
    if name not in STOP_QUANTITIES:
        c.error("E152", f"cannot stop on `{name}`" + did_you_mean(name, STOP_QUANTITIES)
                   + " (uncertainty, best or dose)", cond.quantity.span)
        return None
    if name == "uncertainty" and cond.op not in ("<", "<="):
        c.error("E153", "uncertainty shrinks as the run goes on: write "
                   f"`stop when uncertainty < {cond.threshold.text}`", cond.span)
        return None
    if name == "dose":
        if cond.op not in (">", ">="):
            c.error("E153", "dose grows as the run goes on: write "
                       f"`stop when dose > {cond.threshold.text}`", cond.span)
            return None
        value = c.of_kind(cond.threshold, "dose", "the dose limit")
        return StopWhen("dose", value, cond.op) if value is not None else None
    if cond.threshold.unit is not None and UNITS[cond.threshold.unit].kind in ("length", "dose",
                                                                          "time"):
        c.error("E120", f"`{name}` is in the scalar's own units; `{cond.threshold.text}` "
                   "cannot be one", cond.threshold.span)
        return None
    value = cond.threshold.value * (UNITS[cond.threshold.unit].factor if cond.threshold.unit else 1)
    if name == "uncertainty" and value <= 0:
        c.error("E130", "the uncertainty threshold must be > 0", cond.threshold.span)
        return None
    return StopWhen(name, value, cond.op)


def publish(c: _Checker, stmt: ast.Statement | None) -> str | None:
    if not isinstance(stmt, ast.Publish):
        return None
    if not ADDRESS.match(stmt.address.value):
        c.error("E133", f"`{stmt.address.value}` is not a ZeroMQ address "
                   "(e.g. \"tcp://127.0.0.1:5702\")", stmt.address.span)
    return stmt.address.value
