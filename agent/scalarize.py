"""Turn one measurement (a spectrum or a diffraction pattern) into the scalar the model learns.

Evaluates a compiled plan's scalarizer expression (`dkl.dsl.plan` nodes) on measurements.
A measurement that cannot give a value (no such peak, zero denominator, NaN data, a failed
background fit, ...) is a typed per-point failure, `ScalarizeError(code, message)` or a
`Failure` in a `ScalarResult`; it is recorded as a failed measurement and never fed to the
model. No other exception type leaves this module's public functions.

Everything is evaluated on a stack of measurements at once (`scalarize` is the stack of
one), so per-point and vectorised results are the same computation. The physics lives in
`dkl.agent.spectra` and `dkl.agent.diffraction`; docs/scalarizers.md lists the functions,
algorithms and failure codes.

Example:
    >>> import numpy as np
    >>> from dkl.dsl.plan import Call, Win
    >>> axis = SpectrumAxis(np.linspace(0.0, 4.0, 401))
    >>> spectrum = np.exp(-0.5 * ((axis.energy - 2.0) / 0.1) ** 2)
    >>> round(scalarize(Call("centroid", (Win(1.5, 2.5, "eV"),)), spectrum, axis), 3)
    2.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkl.agent import diffraction, spectra
from dkl.dsl.plan import BinOp, Call, Expr, Neg, Num, Ref, Win

__all__ = [
    "FAILURE_CODES",
    "DetectorGeometry",
    "Failure",
    "ScalarResult",
    "ScalarizeError",
    "SpectrumAxis",
    "scalarize",
    "scalarize_many",
    "try_scalarize",
]

#: Every failure code, with what it means. The first group are per-point failures; the
#: last three mean the plan, instrument description or data layout are wrong.
FAILURE_CODES: dict[str, str] = {
    "bad_data": "the measurement contains NaN or infinite values",
    "no_peak": "the spectrum has fewer peaks than the one asked for",
    "width_undefined": "the selected maximum is not a peak, so it has no width",
    "empty_window": "no channel or detector pixel falls in the window",
    "zero_denominator": "division or ratio by zero",
    "no_intensity": "total intensity <= 0 where a weighted mean needs it (centroid, com)",
    "log_domain": "log of a value <= 0",
    "sqrt_domain": "sqrt of a negative value",
    "fit_failed": "the power-law background fit failed (< 3 positive channels, E <= 0)",
    "not_finite": "the result overflowed to inf or NaN",
    "bad_expression": "the expression is malformed for this modality",
    "bad_context": "the context does not match the function (spectrum vs diffraction)",
    "bad_shape": "the data do not match the context (channels, pattern dimensions)",
    "internal_error": "an unexpected error (a bug): the cause is chained",
}


@dataclass(frozen=True)
class SpectrumAxis:
    """Calibration of spectra (`eels`, `eds`): the energy (eV) of every channel, increasing."""

    energy: np.ndarray

    def __post_init__(self) -> None:
        energy = np.asarray(self.energy, dtype=np.float64)
        if energy.ndim != 1 or energy.size == 0 or not np.all(np.isfinite(energy)):
            raise ValueError("energy must be a non-empty 1-D array of finite values")
        if np.any(np.diff(energy) <= 0):
            raise ValueError("energy must be strictly increasing")
        object.__setattr__(self, "energy", energy)


@dataclass(frozen=True)
class DetectorGeometry:
    """Calibration of diffraction patterns (`4dstem`): angle per pixel and beam centre."""

    mrad_per_px: float
    center: tuple[float, float]  # (cy, cx) in detector pixels

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mrad_per_px) and self.mrad_per_px > 0):
            raise ValueError(f"mrad_per_px must be positive, got {self.mrad_per_px!r}")
        if len(self.center) != 2 or not all(np.isfinite(c) for c in self.center):
            raise ValueError(f"center must be (cy, cx), got {self.center!r}")
        object.__setattr__(self, "mrad_per_px", float(self.mrad_per_px))
        object.__setattr__(self, "center", (float(self.center[0]), float(self.center[1])))


Context = SpectrumAxis | DetectorGeometry


@dataclass(frozen=True)
class Failure:
    """Why one measurement gave no scalar; `code` is a key of `FAILURE_CODES`."""

    code: str
    message: str


class ScalarizeError(Exception):
    """A measurement could not be scalarized; `code` is a key of `FAILURE_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def failure(self) -> Failure:
        return Failure(self.code, self.message)


@dataclass(frozen=True)
class ScalarResult:
    """A scalar or the reason there is none (exactly one of the two is set)."""

    value: float | None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def scalarize(expr: Expr, data: np.ndarray, context: Context) -> float:
    """Evaluate `expr` on one measurement.

    Args:
        expr: the plan's `scalarize` expression.
        data: `(E,)` spectrum or `(Qy, Qx)` diffraction pattern.
        context: `SpectrumAxis` or `DetectorGeometry` of the instrument.

    Returns:
        The finite scalar.

    Raises:
        ScalarizeError: for any failure (see `FAILURE_CODES`), never another type.
    """
    column, _ = _evaluate_guarded(expr, data, context, single=True)
    if column.failed[0]:
        failure = column.failures[0]
        raise ScalarizeError(failure.code, failure.message)
    return float(column.values[0])


def try_scalarize(expr: Expr, data: np.ndarray, context: Context) -> ScalarResult:
    """Like `scalarize`, but returns the failure instead of raising; never raises."""
    try:
        return ScalarResult(scalarize(expr, data, context))
    except ScalarizeError as err:
        return ScalarResult(None, err.failure())


def scalarize_many(
    expr: Expr, stack: np.ndarray, context: Context
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate `expr` on many measurements at once (benchmarks, ground-truth maps).

    Args:
        expr: the plan's `scalarize` expression.
        stack: `(..., E)` spectra or `(..., Qy, Qx)` patterns; any leading shape, e.g.
            `(N,)` or a `(H, W)` scan.
        context: `SpectrumAxis` or `DetectorGeometry`.

    Returns:
        `(values, failed)`, both of the leading shape: float64 with NaN where failed, and
        a bool mask. Identical, point for point, to `scalarize` on each measurement.

    Raises:
        ScalarizeError: only for whole-stack problems (`bad_expression`, `bad_context`,
            `bad_shape`); per-point failures are in the mask.
    """
    column, lead = _evaluate_guarded(expr, stack, context, single=False)
    values = np.where(column.failed, np.nan, column.values).reshape(lead)
    return values, column.failed.reshape(lead)


def _evaluate_guarded(
    expr: Expr, data: np.ndarray, context: Context, single: bool
) -> tuple[_Column, tuple[int, ...]]:
    try:
        stack, lead = _as_stack(data, context, single)
        if len(stack) == 0:  # an empty scan: nothing to evaluate
            return _Column.of(np.zeros(0)), lead
        with np.errstate(all="ignore"):
            return _Evaluator(stack, context).run(expr), lead
    except ScalarizeError:
        raise
    except Exception as err:  # a bug must still reach the loop as a typed failure
        raise ScalarizeError("internal_error", f"{type(err).__name__}: {err}") from err


def _as_stack(
    data: np.ndarray, context: Context, single: bool
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flatten the leading dimensions; check the measurement shape against the context."""
    if not isinstance(context, SpectrumAxis | DetectorGeometry):
        raise ScalarizeError(
            "bad_context", f"context must be SpectrumAxis or DetectorGeometry, not "
            f"{type(context).__name__}")
    try:
        arr = np.asarray(data)
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(arr.dtype)
    except (TypeError, ValueError) as err:
        raise ScalarizeError("bad_shape", f"data must be a real numeric array ({err})") from err
    per_point = 1 if isinstance(context, SpectrumAxis) else 2
    if arr.ndim < per_point or (single and arr.ndim != per_point):
        kind = "spectrum (E,)" if per_point == 1 else "pattern (Qy, Qx)"
        raise ScalarizeError("bad_shape", f"expected a {kind}, got shape {arr.shape}")
    if isinstance(context, SpectrumAxis) and arr.shape[-1] != len(context.energy):
        raise ScalarizeError(
            "bad_shape", f"spectrum has {arr.shape[-1]} channels, the energy axis "
            f"{len(context.energy)}")
    if 0 in arr.shape[-per_point:]:
        raise ScalarizeError("bad_shape", f"empty measurement of shape {arr.shape}")
    lead = (1,) if single else arr.shape[: arr.ndim - per_point]
    return arr.reshape((-1, *arr.shape[arr.ndim - per_point :])), lead


# --- evaluation over a stack ---------------------------------------------------------------

_SPECTRUM_FNS = {"peak", "energy", "width", "count", "mean", "band", "sum", "max", "min",
                 "centroid", "edge"}
_PATTERN_FNS = {"vbf", "vadf", "vabf"}
_COM_REFS = {"com.x", "com.y", "com.magnitude", "com.angle"}
_BAND = {"mean": np.mean, "band": np.mean, "sum": np.sum, "max": np.max, "min": np.min}


@dataclass(frozen=True)
class _Column:
    """Values of one sub-expression for every measurement, with per-point failures."""

    values: np.ndarray  # (N,) float64; meaningless where failed
    failed: np.ndarray  # (N,) bool
    failures: np.ndarray  # (N,) object: Failure or None

    @classmethod
    def of(cls, values: np.ndarray) -> _Column:
        values = np.asarray(values, dtype=np.float64)
        return cls(values, np.zeros(len(values), bool), np.full(len(values), None, object))

    def fail(self, mask: np.ndarray, code: str, message: str) -> _Column:
        """Mark `mask` failed with `code` where not failed already (first cause wins)."""
        new = np.asarray(mask, dtype=bool) & ~self.failed
        if not new.any():
            return self
        failures = self.failures.copy()
        failures[new] = Failure(code, message)
        return _Column(self.values, self.failed | new, failures)

    def with_values(self, values: np.ndarray, *others: _Column) -> _Column:
        """New values carrying the failures of `self` and then of `others`."""
        failed, failures = self.failed, self.failures
        for other in others:
            failures = np.where(failed, failures, other.failures)
            failed = failed | other.failed
        return _Column(np.asarray(values, dtype=np.float64), failed, failures)


class _Evaluator:
    """Evaluates one expression over a stack, caching what sub-expressions share."""

    def __init__(self, stack: np.ndarray, context: Context) -> None:
        self.context = context
        self.n = len(stack)
        self.bad = np.zeros(self.n, dtype=bool)
        if np.issubdtype(stack.dtype, np.inexact):  # integer counts are always finite
            finite = np.isfinite(stack)
            self.bad = ~finite.reshape(self.n, -1).all(axis=1)
            if self.bad.any():  # computed on zeros, reported as bad_data
                stack = np.where(finite, stack, 0)
        self.stack = stack  # as given (no float64 copy of a large cube unless needed)
        self._floats: np.ndarray | None = None
        self._smoothed: np.ndarray | None = None
        self._peaks: list[spectra.Peaks] | None = None
        self._com: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, expr: Expr) -> _Column:
        col = self.eval(expr)
        col = col.fail(~np.isfinite(col.values), "not_finite", f"{_text(expr)} is not finite")
        if self.bad.any():
            failures = col.failures.copy()
            failures[self.bad] = Failure("bad_data", FAILURE_CODES["bad_data"])
            col = _Column(col.values, col.failed | self.bad, failures)
        return col

    def eval(self, expr: Expr) -> _Column:
        if isinstance(expr, Num):
            return _Column.of(np.full(self.n, float(expr.value)))
        if isinstance(expr, Neg):
            inner = self.eval(expr.operand)
            return inner.with_values(-inner.values)
        if isinstance(expr, BinOp):
            if expr.op not in "+-*/" or len(expr.op) != 1:
                raise _bad(f"unknown operator {expr.op!r}")
            return self.arith(expr.op, self.eval(expr.left), self.eval(expr.right), expr)
        if isinstance(expr, Ref):
            return self.ref(expr)
        if isinstance(expr, Call):
            return self.call(expr)
        if isinstance(expr, Win):
            raise _bad(f"the window {_text(expr)} is not a scalar")
        raise _bad(f"not an expression node: {expr!r}")

    def arith(self, op: str, left: _Column, right: _Column, expr: Expr) -> _Column:
        if op != "/":
            ufunc = {"+": np.add, "-": np.subtract, "*": np.multiply}[op]
            return left.with_values(ufunc(left.values, right.values), right)
        zero = right.values == 0
        safe = np.where(zero, 1.0, right.values)
        out = left.with_values(left.values / safe, right)
        return out.fail(zero, "zero_denominator", f"{_text(expr)}: denominator is 0")

    def ref(self, expr: Ref) -> _Column:
        if expr.name == "peaks":
            raise _bad("`peaks` is only meaningful inside count(peaks)")
        if expr.name not in _COM_REFS:
            raise _bad(f"unknown quantity {expr.name!r}")
        geometry = self._geometry(expr.name)
        if self._com is None:
            self._com = diffraction.center_of_mass(
                self.stack, geometry.mrad_per_px, geometry.center)
        x, y = self._com
        values = {"com.x": x, "com.y": y, "com.magnitude": np.hypot(x, y),
                  "com.angle": np.arctan2(y, x)}[expr.name]
        return _Column.of(values).fail(
            np.isnan(x), "no_intensity", f"{expr.name}: pattern has no positive total intensity")

    def call(self, call: Call) -> _Column:
        fn = call.fn
        if fn in ("abs", "log", "sqrt"):
            return self.math(call)
        if fn == "ratio":
            a, b = self._args(call, 2)
            return self.arith("/", self.eval(a), self.eval(b), call)
        if fn in _SPECTRUM_FNS:
            self._axis(fn)
            return self.spectrum_call(call)
        if fn in _PATTERN_FNS:
            return self.pattern_call(call)
        raise _bad(f"unknown function {fn!r}")

    def math(self, call: Call) -> _Column:
        (arg,) = self._args(call, 1)
        inner = self.eval(arg)
        v = inner.values
        if call.fn == "abs":
            return inner.with_values(np.abs(v))
        if call.fn == "log":
            out = inner.with_values(np.log(np.where(v > 0, v, 1.0)))
            return out.fail(~(v > 0), "log_domain", f"{_text(call)}: argument <= 0")
        out = inner.with_values(np.sqrt(np.where(v >= 0, v, 0.0)))
        return out.fail(~(v >= 0), "sqrt_domain", f"{_text(call)}: argument < 0")

    # --- spectra ---------------------------------------------------------------------------

    def spectrum_call(self, call: Call) -> _Column:
        fn = call.fn
        if fn == "peak":
            return self.peak(call, "height")
        if fn in ("energy", "width"):
            (inner,) = self._args(call, 1)
            if not (isinstance(inner, Call) and inner.fn == "peak"):
                raise _bad(f"{fn}() takes peak(...), got {_text(inner)}")
            return self.peak(inner, fn)
        if fn == "count":
            (arg,) = self._args(call, 1)
            if arg != Ref("peaks"):
                raise _bad(f"count() takes `peaks`, got {_text(arg)}")
            return _Column.of(np.array([len(p.height) for p in self.peaks()], dtype=float))
        if fn == "edge":
            return self.edge(call)
        (arg,) = self._args(call, 1)
        mask = self._energy_mask(arg, fn)
        if not mask.any():
            return self._all_failed("empty_window", f"{_text(call)}: no channel in the window")
        data = self.stack[:, mask].astype(np.float64)
        if fn in _BAND:
            return _Column.of(_BAND[fn](data, axis=1))
        total = data.sum(axis=1)  # centroid
        safe = np.where(total > 0, total, 1.0)
        return _Column.of(data @ self.context.energy[mask] / safe).fail(
            ~(total > 0), "no_intensity", f"{_text(call)}: window intensity <= 0")

    def peak(self, call: Call, quantity: str) -> _Column:
        (arg,) = self._args(call, 1)
        text = _text(Call(quantity, (call,))) if quantity != "height" else _text(call)
        if isinstance(arg, Num):
            n = arg.value
            if arg.unit is not None or not (np.isfinite(n) and float(n).is_integer() and n >= 1):
                raise _bad(f"peak(n) needs a whole number n >= 1, got {_text(arg)}")
            n = int(n)
            found = self.peaks()
            field = {"height": "height", "energy": "energy", "width": "fwhm"}[quantity]
            values = np.array([getattr(p, field)[n - 1] if len(p.height) >= n else np.nan
                               for p in found])
            col = _Column.of(values).fail(
                np.array([len(p.height) < n for p in found], dtype=bool),
                "no_peak", f"{text}: fewer than {n} peaks found")
        else:
            mask = self._energy_mask(arg, "peak")
            if not mask.any():
                return self._all_failed("empty_window", f"{text}: no channel in the window")
            height, energy, fwhm = spectra.window_peak(self.smoothed(), self.context.energy, mask)
            col = _Column.of({"height": height, "energy": energy, "width": fwhm}[quantity])
        return col.fail(np.isnan(col.values), "width_undefined",
                        f"{text}: the maximum is not a peak with a half-maximum width")

    def edge(self, call: Call) -> _Column:
        (window,) = self._args(call, 1, kwargs=("background",))
        signal = self._energy_mask(window, "edge")
        low, high = _ordered(window)  # type: ignore[arg-type]  # a Win: the mask checked it
        bg_win = call.kwarg("background")
        if bg_win is None:  # default (as the DSL's): as wide as the signal, just below it
            bg_win = Win(2.0 * low - high, low, "eV")
        # Channels from the signal window's start upwards belong to the signal, never to the
        # fit (the DSL's default background ends exactly at that start).
        background = self._energy_mask(bg_win, "edge background") & (self.context.energy < low)
        if not (signal.any() and background.any()):
            return self._all_failed("empty_window", f"{_text(call)}: a window has no channel")
        values = spectra.edge_integral(self.floats(), self.context.energy, signal, background)
        return _Column.of(values).fail(
            np.isnan(values), "fit_failed", f"{_text(call)}: power-law background fit failed")

    def floats(self) -> np.ndarray:
        if self._floats is None:
            self._floats = self.stack.astype(np.float64)
        return self._floats

    def smoothed(self) -> np.ndarray:
        if self._smoothed is None:
            self._smoothed = spectra.smooth(self.floats())
        return self._smoothed

    def peaks(self) -> list[spectra.Peaks]:
        if self._peaks is None:
            self._peaks = spectra.find_all_peaks(self.floats(), self.context.energy)
        return self._peaks

    # --- diffraction -----------------------------------------------------------------------

    def pattern_call(self, call: Call) -> _Column:
        geometry = self._geometry(call.fn)
        (arg,) = self._args(call, 1)
        if call.fn == "vbf":
            if not isinstance(arg, Num) or arg.unit not in (None, "mrad") or arg.value <= 0:
                raise _bad(f"vbf() takes a radius > 0 mrad, got {_text(arg)}")
            low, high = 0.0, float(arg.value)
        else:
            if not isinstance(arg, Win) or arg.unit not in (None, "mrad"):
                raise _bad(f"{call.fn}() takes an annulus r1 .. r2 mrad, got {_text(arg)}")
            low, high = _ordered(arg)
        radius = diffraction.radius_map(
            self.stack.shape[1:], geometry.mrad_per_px, geometry.center)
        mask = diffraction.annulus_mask(radius, low, high)
        if not mask.any():
            return self._all_failed("empty_window", f"{_text(call)}: no detector pixel inside")
        return _Column.of(diffraction.detector_sum(self.stack, mask))

    # --- helpers ---------------------------------------------------------------------------

    def _axis(self, what: str) -> SpectrumAxis:
        if not isinstance(self.context, SpectrumAxis):
            raise ScalarizeError("bad_context", f"{what} needs spectra (a SpectrumAxis)")
        return self.context

    def _geometry(self, what: str) -> DetectorGeometry:
        if not isinstance(self.context, DetectorGeometry):
            raise ScalarizeError("bad_context", f"{what} needs diffraction (DetectorGeometry)")
        return self.context

    def _energy_mask(self, arg: Expr, what: str) -> np.ndarray:
        if not isinstance(arg, Win) or arg.unit not in (None, "eV"):
            raise _bad(f"{what} takes an energy window LOW .. HIGH eV, got {_text(arg)}")
        low, high = _ordered(arg)
        energy = self._axis(what).energy
        return (energy >= low) & (energy <= high)

    def _args(self, call: Call, count: int, kwargs: tuple[str, ...] = ()) -> tuple[Expr, ...]:
        if len(call.args) != count:
            raise _bad(f"{call.fn}() takes {count} argument(s), got {len(call.args)}")
        unknown = [k for k, _ in call.kwargs if k not in kwargs]
        if unknown:
            raise _bad(f"{call.fn}() has no argument {unknown[0]!r}")
        return call.args

    def _all_failed(self, code: str, message: str) -> _Column:
        return _Column.of(np.zeros(self.n)).fail(np.ones(self.n, bool), code, message)


def _ordered(win: Win) -> tuple[float, float]:
    if not win.low <= win.high:
        raise _bad(f"window {_text(win)} has low > high")
    return float(win.low), float(win.high)


def _bad(message: str) -> ScalarizeError:
    return ScalarizeError("bad_expression", message)


def _text(expr: Expr) -> str:
    """Source-like text of an expression, for failure messages."""
    if isinstance(expr, Num):
        return f"{expr.value:g}" + (f" {expr.unit}" if expr.unit else "")
    if isinstance(expr, Win):
        return f"{expr.low:g} .. {expr.high:g}" + (f" {expr.unit}" if expr.unit else "")
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Call):
        parts = [_text(a) for a in expr.args] + [f"{k}={_text(v)}" for k, v in expr.kwargs]
        return f"{expr.fn}({', '.join(parts)})"
    if isinstance(expr, BinOp):
        return f"({_text(expr.left)} {expr.op} {_text(expr.right)})"
    if isinstance(expr, Neg):
        return f"-{_text(expr.operand)}"
    return repr(expr)
