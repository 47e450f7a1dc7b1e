"""The compiled, immutable experiment plan: what the agent runs and what travels on the bus.

Every default is filled in and every quantity is in its canonical unit (eV, mrad, px, s),
so a consumer never re-interprets the source text. `Plan.to_dict()` gives plain
msgpack-able data and `Plan.from_dict()` rebuilds an equal plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# --- scalarizer expressions (no source positions: equal meaning compares equal) ---------


@dataclass(frozen=True)
class Num:
    """A number in its canonical unit (`eV`, `mrad`, `px`) or dimensionless (`unit=None`)."""

    value: float
    unit: str | None = None


@dataclass(frozen=True)
class Win:
    """A window `low .. high` in canonical units (`eV` for spectra, `mrad` for patterns)."""

    low: float
    high: float
    unit: str | None = None


@dataclass(frozen=True)
class Ref:
    """A named quantity: `peaks` (as in `count(peaks)`), `com.x`, `com.y`, `com.magnitude`,
    `com.angle`."""

    name: str


@dataclass(frozen=True)
class Call:
    """A function call, e.g. `peak(1)`, `edge(455 eV .. 475 eV, background=420 eV .. 450 eV)`."""

    fn: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()

    def kwarg(self, name: str) -> Expr | None:
        return dict(self.kwargs).get(name)


@dataclass(frozen=True)
class BinOp:
    """Arithmetic `+ - * /` on two scalars."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: Expr


Expr = Num | Win | Ref | Call | BinOp | Neg

_EXPR_TYPES: dict[str, type] = {
    "num": Num,
    "win": Win,
    "ref": Ref,
    "call": Call,
    "binop": BinOp,
    "neg": Neg,
}
_EXPR_TAGS = {cls: tag for tag, cls in _EXPR_TYPES.items()}


def expr_to_dict(expr: Expr) -> dict[str, Any]:
    """Plain data for msgpack: a tagged dict per node."""
    tag = _EXPR_TAGS[type(expr)]
    if isinstance(expr, Num):
        return {"t": tag, "value": expr.value, "unit": expr.unit}
    if isinstance(expr, Win):
        return {"t": tag, "low": expr.low, "high": expr.high, "unit": expr.unit}
    if isinstance(expr, Ref):
        return {"t": tag, "name": expr.name}
    if isinstance(expr, Call):
        return {
            "t": tag,
            "fn": expr.fn,
            "args": [expr_to_dict(a) for a in expr.args],
            "kwargs": [[k, expr_to_dict(v)] for k, v in expr.kwargs],
        }
    if isinstance(expr, BinOp):
        return {"t": tag, "op": expr.op, "left": expr_to_dict(expr.left),
                "right": expr_to_dict(expr.right)}
    return {"t": tag, "operand": expr_to_dict(expr.operand)}


def expr_from_dict(data: dict[str, Any]) -> Expr:
    """Inverse of `expr_to_dict`."""
    tag = data["t"]
    if tag == "num":
        return Num(float(data["value"]), data["unit"])
    if tag == "win":
        return Win(float(data["low"]), float(data["high"]), data["unit"])
    if tag == "ref":
        return Ref(str(data["name"]))
    if tag == "call":
        return Call(
            str(data["fn"]),
            tuple(expr_from_dict(a) for a in data["args"]),
            tuple((str(k), expr_from_dict(v)) for k, v in data["kwargs"]),
        )
    if tag == "binop":
        return BinOp(str(data["op"]), expr_from_dict(data["left"]), expr_from_dict(data["right"]))
    if tag == "neg":
        return Neg(expr_from_dict(data["operand"]))
    raise ValueError(f"unknown expression tag {tag!r}")


# --- plan sections -----------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentSpec:
    """Which instrument runs the plan.

    kind: `builtin` (name), `file` (path, optional survey path), `remote` (address),
    `nion` (the Nion Swift adapter; `address` empty for the simulated STEM).
    Relative paths are already resolved against the `.dkl` file's folder.
    """

    kind: str = "builtin"
    name: str = "plasmonic"
    path: str | None = None
    survey: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Region:
    """An inclusive rectangle of survey pixels: x in [x0, x1], y in [y0, y1]."""

    x0: float
    x1: float
    y0: float
    y1: float


@dataclass(frozen=True)
class Acquisition:
    """Acquisition function and its parameters.

    `xi` is EI's and PI's exploration margin, `beta` UCB's (score = mean + sqrt(beta) * std),
    `penalty_px` the radius around recently measured points whose scores are damped (0: off).
    """

    name: str = "ei"
    xi: float = 0.01
    beta: float = 4.0
    penalty_px: float = 0.0


# Every seed point is a measurement the model did not choose: 5 found the top 1 % of
# benchmarks/discovery.py's maps 5.4x sooner than random over 30 run seeds, 10 only 4.3x
# (docs/model.md, "Fewer seed points").
DEFAULT_SEED_POINTS = 5


@dataclass(frozen=True)
class Seeding:
    """Initial points: `random` n, `grid` n, or `at` explicit (x, y) survey pixels."""

    kind: str = "random"
    n: int = DEFAULT_SEED_POINTS
    points: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """Deep-kernel GP settings."""

    name: str = "dkl"
    embed: int = 2
    hidden: tuple[int, ...] = (64, 64)
    kernel: str = "matern52"
    steps: int = 200
    lr: float = 0.01
    precision: str = "single"
    linear: int = 32  #: principal components of the patch in an added linear kernel; 0: off


@dataclass(frozen=True)
class StopWhen:
    """One stop condition; the plan stops when any of them holds.

    kind: `after` (measurements), `time` (seconds), `uncertainty` (`<`), `best` (`>` or `<`),
    `dose` (`>`, e/A2). `op` is the comparison as written.
    """

    kind: str
    value: float
    op: str = ">="


@dataclass(frozen=True)
class Plan:
    """A checked experiment with every default filled in."""

    source: str = field(compare=False)
    sha256: str = field(compare=False)
    path: str | None = field(default=None, compare=False)
    title: str | None = None
    instrument: InstrumentSpec = field(default_factory=InstrumentSpec)
    modality: str = "eels"
    exposure_s: float | None = None
    patch_px: int = 16
    stride_px: int = 1
    region: Region | None = None
    exclude: tuple[Region, ...] = ()
    scalarize: Expr = field(default_factory=lambda: Num(0.0))
    scalarize_text: str = ""
    maximize: bool = True
    acquire: Acquisition = field(default_factory=Acquisition)
    seed: Seeding = field(default_factory=Seeding)
    model: ModelSpec = field(default_factory=ModelSpec)
    train_every: int = 1
    stop: tuple[StopWhen, ...] = (StopWhen("after", 200.0),)
    publish: str | None = None

    @property
    def max_measurements(self) -> int | None:
        """The bound set by `stop after N`, if any."""
        counts = [int(s.value) for s in self.stop if s.kind == "after"]
        return min(counts) if counts else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, float, int, bool, None) for msgpack and JSON."""
        data = asdict(self)
        data["scalarize"] = expr_to_dict(self.scalarize)
        data["model"]["hidden"] = list(self.model.hidden)
        data["seed"]["points"] = [list(p) for p in self.seed.points]
        data["exclude"] = [asdict(r) for r in self.exclude]
        data["stop"] = [asdict(s) for s in self.stop]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan from `to_dict()` output (e.g. after a msgpack round trip)."""
        d = dict(data)
        d["instrument"] = InstrumentSpec(**d["instrument"])
        d["region"] = Region(**d["region"]) if d.get("region") else None
        d["exclude"] = tuple(Region(**r) for r in d.get("exclude", ()))
        d["scalarize"] = expr_from_dict(d["scalarize"])
        d["acquire"] = Acquisition(**d["acquire"])
        seed = dict(d["seed"])
        seed["points"] = tuple((float(x), float(y)) for x, y in seed.get("points", ()))
        d["seed"] = Seeding(**seed)
        model = dict(d["model"])
        model["hidden"] = tuple(int(h) for h in model["hidden"])
        d["model"] = ModelSpec(**model)
        d["stop"] = tuple(StopWhen(**s) for s in d["stop"])
        return cls(**d)
