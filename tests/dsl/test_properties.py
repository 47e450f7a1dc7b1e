"""Property-based tests: random valid programs survive `fmt` and the msgpack round trip.

The generator writes what a user may write: statements in any order, `;` or LF or CRLF
between them, comments on their own lines and after statements, numbers with and without
units (keV, ms, min, ...), nested scalarizer expressions with redundant parentheses, and
acquisition names in any case. Every generated program must check without errors.
"""

from __future__ import annotations

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dkl.dsl import Plan, compile_source, format_program, parse

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# (dataset, modality, signal range) worlds a program can live in
WORLDS = {
    "plasmonic": ("eels", (0.0, 4.0)),
    "core-loss": ("eels", (360.0, 880.0)),
    "4dstem": ("4dstem", (1.0, 95.0)),
}


def number(value: float) -> str:
    """A number as a user might write it: `3`, `0.25`, `1e-3`."""
    text = f"{value:.6g}"
    return text


@st.composite
def energy(draw: st.DrawFn, low: float, high: float) -> tuple[float, str]:
    value = round(draw(st.floats(low, high)), 3)
    if draw(st.booleans()) and value > 0:
        return value, f"{number(value / 1000)} keV"
    return value, f"{number(value)} eV"


@st.composite
def energy_window(draw: st.DrawFn, lo: float, hi: float) -> str:
    a, a_text = draw(energy(lo, hi - 0.2))
    _, b_text = draw(energy(a + 0.1, hi))
    return f"{a_text} .. {b_text}"


@st.composite
def spectrum_leaf(draw: st.DrawFn, world: str) -> str:
    lo, hi = WORLDS[world][1]
    w = draw(energy_window(lo, hi))
    peak = draw(st.sampled_from([f"peak({draw(st.integers(1, 4))})", f"peak({w})"]))
    options = [peak, f"energy({peak})", f"width({peak})", "count(peaks)",
               *(f"{fn}({w})" for fn in ("mean", "band", "sum", "max", "min", "centroid"))]
    if world == "core-loss":
        edge_low = draw(st.floats(lo + 60, hi - 40))
        width = draw(st.floats(5, 30))
        gap = draw(st.floats(0, 10))
        signal = f"{number(round(edge_low, 2))} eV .. {number(round(edge_low + width, 2))} eV"
        bg_high = round(edge_low - gap, 2)
        background = f"{number(round(bg_high - 30, 2))} eV .. {number(bg_high)} eV"
        options += [f"edge({signal})", f"edge({signal}, background={background})"]
    return draw(st.sampled_from(options))


@st.composite
def diffraction_leaf(draw: st.DrawFn) -> str:
    r1 = draw(st.integers(1, 80))
    r2 = draw(st.integers(r1 + 1, 95))
    return draw(st.sampled_from([
        "com.x", "com.y", "com.magnitude", "com.angle", f"vbf({r1} mrad)",
        f"vadf({r1} mrad .. {r2} mrad)", f"vabf({number(r1 / 10)} mrad .. {r2} mrad)",
    ]))


def expression(world: str) -> st.SearchStrategy[str]:
    leaf = diffraction_leaf() if world == "4dstem" else spectrum_leaf(world)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(
                lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}" if not e.startswith("-") else f"-({e})"),
            st.tuples(st.sampled_from(["abs", "log", "sqrt"]), inner).map(
                lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"ratio({t[0]}, {t[1]})"),
            st.tuples(inner, st.floats(0.01, 100).map(lambda v: number(round(v, 3)))).map(
                lambda t: f"{t[1]} * {t[0]}"),
        )

    return st.recursive(leaf, extend, max_leaves=6)


def pixels(draw: st.DrawFn, low: int, high: int) -> str:
    value = draw(st.integers(low, high))
    return f"{value} px" if draw(st.booleans()) else str(value)


@st.composite
def area(draw: st.DrawFn, keyword: str) -> str:
    x0 = draw(st.integers(0, 50))
    y0 = draw(st.integers(0, 50))
    x1, y1 = draw(st.integers(x0 + 1, 63)), draw(st.integers(y0 + 1, 63))
    return f"{keyword} {x0} px .. {x1} px, {y0} px .. {y1} px"


def _acquire(draw: st.DrawFn) -> str:
    acq = draw(st.sampled_from(["EI", "ei", "Ei", "PI", "UCB", "ucb", "uncertainty",
                                "thompson", "random"]))
    text = f"acquire {acq}"
    if acq.lower() in ("ei", "pi") and draw(st.booleans()):
        text += f" xi={number(round(draw(st.floats(0, 1)), 4))}"
    if acq.lower() == "ucb" and draw(st.booleans()):
        text += f" beta={number(round(draw(st.floats(0, 10)), 3))}"
    if acq.lower() != "random" and draw(st.booleans()):
        text += f" penalty={pixels(draw, 0, 8)}"
    return text


def _seed(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["random", "grid", "at"]))
    if kind != "at":
        return f"seed {kind} {draw(st.integers(1, 30))}"
    points = [f"({pixels(draw, 0, 63)}, {pixels(draw, 0, 63)})"
              for _ in range(draw(st.integers(1, 4)))]
    return "seed at " + ", ".join(points)


def _model_setting(draw: st.DrawFn, key: str) -> str:
    if key == "embed":
        return f"embed={draw(st.integers(1, 4))}"
    if key == "hidden":
        widths = draw(st.lists(st.integers(4, 64), min_size=1, max_size=3))
        return f"hidden=[{', '.join(map(str, widths))}]"
    if key == "kernel":
        return f"kernel={draw(st.sampled_from(['rbf', 'matern52']))}"
    if key == "steps":
        return f"steps={draw(st.integers(1, 300))}"
    if key == "lr":
        return f"lr={number(draw(st.sampled_from([0.001, 0.01, 1e-3, 0.05])))}"
    if key == "linear":
        return f"linear={draw(st.integers(0, 16))}"
    return f"precision={draw(st.sampled_from(['single', 'double']))}"


def _stop_condition(draw: st.DrawFn, kind: str) -> str:
    if kind == "count":
        return f"after {draw(st.integers(1, 500))}"
    if kind == "time":
        return f"after {draw(st.integers(1, 90))} {draw(st.sampled_from(['s', 'min', 'ms']))}"
    if kind == "uncertainty":
        return f"when uncertainty < {number(round(draw(st.floats(0.001, 1)), 4))}"
    if kind == "best":
        op = draw(st.sampled_from([">", "<", ">=", "<="]))
        return f"when best {op} {draw(st.integers(-5, 5))}"
    return "when dose > 1e6 e/A2"


def _optional(draw: st.DrawFn, which: str, world: str) -> list[str]:
    """The text of one optional statement (a list: `exclude` may come several times)."""
    if which == "instrument":
        return [f'instrument sim builtin "{world}"']
    if which == "measure":
        return [f"measure {WORLDS[world][0]}"]
    if which == "experiment":
        title = draw(st.text(st.sampled_from('abc XYZ-_.,"\\é'), max_size=12))
        return ['experiment "' + title.replace("\\", "\\\\").replace('"', '\\"') + '"']
    if which == "exposure":
        unit = draw(st.sampled_from(["ms", "s", "min"]))
        return [f"exposure {number(round(draw(st.floats(0.001, 100)), 3))} {unit}"]
    if which == "patch":
        return [f"patch {pixels(draw, 3, 32)}"]
    if which == "stride":
        return [f"stride {pixels(draw, 1, 4)}"]
    if which in ("region", "exclude"):
        return [draw(area(which)) for _ in range(1 if which == "region" else
                                                  draw(st.integers(1, 3)))]
    if which == "direction":
        return [draw(st.sampled_from(["maximize", "minimize"]))]
    if which == "acquire":
        return [_acquire(draw)]
    if which == "seed":
        return [_seed(draw)]
    if which == "model":
        keys = draw(st.lists(st.sampled_from(["embed", "hidden", "kernel", "steps", "lr",
                                              "precision", "linear"]), unique=True, max_size=4))
        return [" ".join(["model dkl", *(_model_setting(draw, k) for k in keys)])]
    if which == "train":
        return [f"train every {draw(st.integers(1, 5))}"]
    if which == "stop":
        kinds = draw(st.lists(st.sampled_from(["count", "time", "uncertainty", "best", "dose"]),
                              min_size=1, max_size=3, unique=True))
        return ["stop " + " or ".join(_stop_condition(draw, k) for k in kinds)]
    return [f'publish "tcp://127.0.0.1:{draw(st.integers(1024, 65535))}"']


OPTIONAL = ("instrument", "measure", "experiment", "exposure", "patch", "stride", "region",
            "exclude", "direction", "acquire", "seed", "model", "train", "stop", "publish")


@st.composite
def program(draw: st.DrawFn) -> str:
    world = draw(st.sampled_from(sorted(WORLDS)))
    statements = [f"scalarize {draw(expression(world))}"]
    chosen = set(draw(st.lists(st.sampled_from(OPTIONAL), unique=True)))
    if world != "plasmonic":
        chosen.add("instrument")  # the default instrument is the plasmonic one
    for which in sorted(chosen):
        statements += _optional(draw, which, world)
    statements = draw(st.permutations(statements))
    lines: list[str] = []
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    for stmt in statements:
        if draw(st.integers(0, 4)) == 0:
            lines.append("# " + draw(st.text(st.sampled_from("abc #;()é"), max_size=10)))
        if lines and "#" not in lines[-1] and lines[-1] and draw(st.integers(0, 3)) == 0:
            lines[-1] += draw(st.sampled_from([";", " ; ", ";  "])) + stmt
        else:
            lines.append(stmt)
        if draw(st.integers(0, 5)) == 0:
            lines[-1] += "  # note"
        if draw(st.integers(0, 6)) == 0:
            lines.append("")
    return newline.join(lines) + (newline if draw(st.booleans()) else "")


def compiled(text: str) -> Plan:
    result = compile_source(text)
    assert result.plan is not None, "\n".join(d.render("gen.dkl", text)
                                              for d in result.diagnostics)
    return result.plan


@SETTINGS
@given(program())
def test_fmt_and_msgpack_keep_the_plan(text: str) -> None:
    plan = compiled(text)
    # fmt: the canonical text compiles to the same plan, and fmt is idempotent
    canonical = format_program(parse(text))
    assert compiled(canonical) == plan
    assert format_program(parse(canonical)) == canonical
    assert "\r" not in canonical
    # the bus: to_dict -> msgpack -> from_dict gives an equal plan and equal data
    data = plan.to_dict()
    back = Plan.from_dict(msgpack.unpackb(msgpack.packb(data)))
    assert back == plan
    assert back.to_dict() == data
    assert (back.source, back.sha256) == (plan.source, plan.sha256)


TOKENS = ["scalarize", "peak", "(", ")", "1", "2.5", "eV", "keV", "..", ",", " ", "\n", ";",
          "stop", "after", "when", "<", ">", "or", "=", "xi", "acquire", "EI", "#", '"', "[",
          "]", "-", "+", "*", "/", "com.x", "measure", "4dstem", "exclude", "px", "mrad",
          "seed", "at", "model", "dkl", "hidden", "edge", "background", "é", "\t", "\r\n",
          "$", "1e999", "instrument", "sim", "builtin", "\x00", "'"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_any_text_gets_diagnostics_never_a_crash(text: str) -> None:
    result = compile_source(text)
    rendered = "\n".join(d.render("junk.dkl", text) for d in result.diagnostics)
    assert not any(word in rendered for word in ("__ANON", "Token(", "$END", "Traceback"))
    assert (result.plan is None) == bool(result.errors)
    for d in result.diagnostics:
        assert d.code[0] in "EW" and d.message and d.line >= 1 and d.column >= 1
