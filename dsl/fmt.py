"""`dkl fmt`: the canonical text of a program, comments and paragraphs kept.

One statement per line, single spaces, minimal parentheses, acquisition names in their
usual spelling. Canonical text parses back to the same plan, and formatting it again
changes nothing.
"""

from __future__ import annotations

from dkl.dsl import ast
from dkl.dsl.expressions import render_expr, render_quantity
from dkl.dsl.functions import ACQUISITION_SPELLING


def _string(s: ast.String) -> str:
    return '"' + s.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(v: ast.Value) -> str:
    if isinstance(v, ast.Quantity):
        return render_quantity(v)
    if isinstance(v, ast.Word):
        return v.name
    if isinstance(v, ast.String):
        return _string(v)
    return "[" + ", ".join(_value(i) for i in v.items) + "]"


def _window(w: ast.Window) -> str:
    return render_expr(w)


def render_statement(stmt: ast.Statement) -> str:
    """The canonical text of one statement."""
    if isinstance(stmt, ast.Experiment):
        return f"experiment {_string(stmt.title)}"
    if isinstance(stmt, ast.Instrument):
        if stmt.kind == "builtin" and stmt.target:
            return f"instrument sim builtin {_string(stmt.target)}"
        if stmt.kind == "file" and stmt.target:
            survey = f" survey {_string(stmt.survey)}" if stmt.survey else ""
            return f"instrument sim {_string(stmt.target)}{survey}"
        if stmt.kind == "remote" and stmt.target:
            return f"instrument {_string(stmt.target)}"
        return "instrument nion" + (" sim" if stmt.sim else "")
    if isinstance(stmt, ast.Measure):
        return f"measure {stmt.modality.name}"
    if isinstance(stmt, ast.QuantityStatement):
        return f"{stmt.keyword} {render_quantity(stmt.quantity)}"
    if isinstance(stmt, ast.Area):
        return f"{stmt.keyword} {_window(stmt.x)}, {_window(stmt.y)}"
    if isinstance(stmt, ast.Scalarize):
        return f"scalarize {render_expr(stmt.expr)}"
    if isinstance(stmt, ast.Named):
        name = stmt.name.name
        if stmt.keyword == "acquire":
            name = ACQUISITION_SPELLING.get(name.lower(), name.lower())
        settings = "".join(f" {s.name}={_value(s.value)}" for s in stmt.settings)
        return f"{stmt.keyword} {name}{settings}"
    if isinstance(stmt, ast.SeedCount):
        count = f" {render_quantity(stmt.count)}" if stmt.count else ""
        return f"seed {stmt.kind.name}{count}"
    if isinstance(stmt, ast.SeedAt):
        points = ", ".join(f"({render_quantity(p.x)}, {render_quantity(p.y)})"
                           for p in stmt.points)
        return f"seed at {points}"
    if isinstance(stmt, ast.Train):
        return f"train every {render_quantity(stmt.every)}"
    if isinstance(stmt, ast.Stop):
        parts = []
        for c in stmt.conditions:
            if isinstance(c, ast.StopAfter):
                parts.append(f"after {render_quantity(c.amount)}")
            else:
                parts.append(f"when {c.quantity.name} {c.op} {render_quantity(c.threshold)}")
        return "stop " + " or ".join(parts)
    if isinstance(stmt, ast.Publish):
        return f"publish {_string(stmt.address)}"
    return stmt.keyword  # maximize / minimize


def format_program(program: ast.Program) -> str:
    """Canonical text of a whole file, keeping comments and single blank lines."""
    by_line: dict[int, list[ast.Statement]] = {}
    for stmt in program.statements:
        by_line.setdefault(stmt.span.line, []).append(stmt)
    trailing: dict[int, str] = {}
    standalone: dict[int, str] = {}
    for line, _col, text in program.comments:
        if line in by_line:
            trailing[line] = text.rstrip()
        else:
            standalone[line] = text.rstrip()
    out: list[str] = []
    last_line = None
    for line in sorted(set(by_line) | set(standalone)):
        if last_line is not None and line > last_line + 1 and out:
            out.append("")
        if line in standalone:
            out.append(standalone[line])
        else:
            texts = [render_statement(s) for s in by_line[line]]
            if line in trailing:
                texts[-1] += f"  {trailing[line]}"
            out.extend(texts)
        last_line = line
    return "\n".join(out) + "\n" if out else ""
