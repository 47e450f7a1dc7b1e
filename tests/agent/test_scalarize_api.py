"""The scalarize API: typed failures only, the non-raising wrapper, vectorised == per point."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dkl.agent.scalarize import (
    FAILURE_CODES,
    DetectorGeometry,
    Failure,
    ScalarizeError,
    ScalarResult,
    SpectrumAxis,
    scalarize,
    scalarize_many,
    try_scalarize,
)
from dkl.dsl.plan import BinOp, Call, Neg, Num, Ref, Win, expr_from_dict, expr_to_dict

ENERGY = np.linspace(0.0, 10.0, 201)
AXIS = SpectrumAxis(ENERGY)
GEOMETRY = DetectorGeometry(mrad_per_px=1.0, center=(4.0, 4.0))


def gaussians(*peaks: tuple[float, float]) -> np.ndarray:
    out = np.full_like(ENERGY, 5.0)
    for centre, height in peaks:
        out += height * np.exp(-0.5 * ((ENERGY - centre) / 0.2) ** 2)
    return out


def test_try_scalarize_returns_value_or_failure() -> None:
    spectrum = gaussians((3.0, 50.0))
    ok = try_scalarize(Call("peak", (Num(1.0),)), spectrum, AXIS)
    assert ok.ok and ok.failure is None and ok.value == pytest.approx(55.0, rel=1e-2)
    bad = try_scalarize(Call("peak", (Num(2.0),)), spectrum, AXIS)
    assert bad == ScalarResult(None, Failure("no_peak", bad.failure.message))
    assert not bad.ok and "peak(2)" in bad.failure.message


@pytest.mark.parametrize(
    ("expr", "data", "context", "code"),
    [
        (Win(1.0, 2.0, "eV"), "spectrum", AXIS, "bad_expression"),
        (Call("nope", (Num(1.0),)), "spectrum", AXIS, "bad_expression"),
        (Call("peak", (Num(0.0),)), "spectrum", AXIS, "bad_expression"),
        (Call("peak", (Num(1.5),)), "spectrum", AXIS, "bad_expression"),
        (Call("peak", (Num(float("nan")),)), "spectrum", AXIS, "bad_expression"),
        (Call("peak", (Num(1.0, "eV"),)), "spectrum", AXIS, "bad_expression"),
        (Call("energy", (Call("mean", (Win(1, 2, "eV"),)),)), "spectrum", AXIS, "bad_expression"),
        (Call("count", (Ref("com.x"),)), "spectrum", AXIS, "bad_expression"),
        (Ref("peaks"), "spectrum", AXIS, "bad_expression"),
        (Ref("com.z"), "pattern", GEOMETRY, "bad_expression"),
        (Call("mean", (Win(2.0, 1.0, "eV"),)), "spectrum", AXIS, "bad_expression"),
        (Call("mean", (Win(1.0, 2.0, "mrad"),)), "spectrum", AXIS, "bad_expression"),
        (Call("mean", (Win(1.0, 2.0, "eV"),), (("x", Num(1.0)),)), "spectrum", AXIS,
         "bad_expression"),
        (Call("ratio", (Num(1.0),)), "spectrum", AXIS, "bad_expression"),
        (BinOp("^", Num(1.0), Num(2.0)), "spectrum", AXIS, "bad_expression"),
        (Call("vbf", (Num(-1.0, "mrad"),)), "pattern", GEOMETRY, "bad_expression"),
        (Call("vadf", (Num(1.0, "mrad"),)), "pattern", GEOMETRY, "bad_expression"),
        (Call("vbf", (Num(1.0, "mrad"),)), "spectrum", AXIS, "bad_context"),
        (Ref("com.x"), "spectrum", AXIS, "bad_context"),
        (Call("peak", (Num(1.0),)), "pattern", GEOMETRY, "bad_context"),
        (Num(1.0), "spectrum", "not a context", "bad_context"),
        (Num(1.0), np.zeros(7), AXIS, "bad_shape"),
        (Num(1.0), np.zeros((2, 201)), AXIS, "bad_shape"),
        (Num(1.0), np.zeros(9), GEOMETRY, "bad_shape"),
        (Num(1.0), np.array(["a"] * 201), AXIS, "bad_shape"),
        (Num(1.0), np.zeros((0, 3)), GEOMETRY, "bad_shape"),
    ],
)
def test_malformed_input_raises_only_scalarize_error(expr, data, context, code: str) -> None:
    if isinstance(data, str):
        data = {"spectrum": gaussians((3.0, 50.0)), "pattern": np.ones((9, 9))}[data]
    with pytest.raises(ScalarizeError) as info:
        scalarize(expr, data, context)
    assert info.value.code == code and code in FAILURE_CODES
    result = try_scalarize(expr, data, context)  # never raises
    assert result.value is None and result.failure.code == code


def test_every_failure_code_is_documented() -> None:
    assert {"no_peak", "zero_denominator", "bad_data", "empty_window", "log_domain",
            "fit_failed"} <= FAILURE_CODES.keys()
    err = ScalarizeError("no_peak", "peak(2): fewer than 2 peaks found")
    assert err.failure() == Failure("no_peak", "peak(2): fewer than 2 peaks found")
    assert str(err) == "no_peak: peak(2): fewer than 2 peaks found"


def test_constant_and_unary_minus() -> None:
    spectrum = gaussians()
    assert scalarize(Neg(Num(2.5)), spectrum, AXIS) == -2.5
    assert scalarize(Neg(Call("mean", (Win(0.0, 10.0, "eV"),))), spectrum, AXIS) == -5.0


def test_expressions_survive_the_plan_round_trip() -> None:
    expr = Call("ratio", (Call("peak", (Num(1.0),)),
                          Call("edge", (Win(6.0, 8.0, "eV"),), (("background", Win(4, 5, "eV")),))))
    again = expr_from_dict(expr_to_dict(expr))
    spectrum = gaussians((3.0, 50.0)) + np.where(ENERGY >= 6.0, 2.0, 0.0)
    assert scalarize(again, spectrum, AXIS) == scalarize(expr, spectrum, AXIS)


SPECTRUM_EXPRESSIONS = [
    Call("peak", (Num(2.0),)),
    Call("energy", (Call("peak", (Num(1.0),)),)),
    Call("width", (Call("peak", (Win(6.0, 8.0, "eV"),)),)),
    Call("count", (Ref("peaks"),)),
    Call("centroid", (Win(2.0, 4.0, "eV"),)),
    Call("ratio", (Call("max", (Win(2.0, 4.0, "eV"),)), Call("min", (Win(6.5, 6.6, "eV"),)))),
    Call("edge", (Win(6.0, 8.0, "eV"),), (("background", Win(4.0, 5.5, "eV")),)),
    Call("sqrt", (BinOp("-", Call("sum", (Win(0, 10, "eV"),)), Num(1500.0)),)),
]


@pytest.mark.parametrize("expr", SPECTRUM_EXPRESSIONS)
def test_vectorised_spectra_equal_per_point(expr) -> None:
    rng = np.random.default_rng(0)
    spectra = [
        gaussians((3.0, 50.0), (7.0, 30.0)),
        gaussians((3.0, 50.0)),
        rng.poisson(gaussians((2.5, 40.0), (6.8, 80.0)) * 20.0) / 20.0,
        np.zeros_like(ENERGY),
        gaussians((3.0, 50.0)) * np.where(ENERGY > 6.5, 0.0, 1.0),
        np.where(ENERGY > 5, np.nan, 1.0),
    ]
    stack = np.stack(spectra).reshape(2, 3, -1)  # a 2 x 3 scan
    values, failed = scalarize_many(expr, stack, AXIS)
    assert values.shape == failed.shape == (2, 3)
    for spectrum, value, fail in zip(spectra, values.ravel(), failed.ravel(), strict=True):
        single = try_scalarize(expr, spectrum, AXIS)
        assert fail == (not single.ok)
        if single.ok:
            assert value == pytest.approx(single.value, rel=1e-12)
        else:
            assert np.isnan(value)
    assert failed.ravel()[-1]  # the NaN spectrum always fails
    assert not failed.all()


def test_an_empty_scan_gives_empty_maps() -> None:
    values, failed = scalarize_many(Call("count", (Ref("peaks"),)), np.zeros((0, 4, 201)), AXIS)
    assert values.shape == failed.shape == (0, 4)


def test_contexts_validate_their_calibration() -> None:
    with pytest.raises(ValueError):
        SpectrumAxis(np.array([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        SpectrumAxis(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError):
        DetectorGeometry(mrad_per_px=0.0, center=(1.0, 1.0))
    with pytest.raises(ValueError):
        DetectorGeometry(mrad_per_px=1.0, center=(np.nan, 1.0))
    assert SpectrumAxis([1, 2, 3]).energy.dtype == np.float64


# --- property: any spectrum, any expression -> a value or a typed per-point failure --------

_windows = st.tuples(st.floats(-2.0, 12.0), st.floats(0.0, 6.0)).map(
    lambda t: Win(t[0], t[0] + t[1], "eV"))
_leaves = st.one_of(
    st.builds(lambda n: Call("peak", (Num(float(n)),)), st.integers(1, 4)),
    _windows.map(lambda w: Call("peak", (w,))),
    st.builds(lambda f, n: Call(f, (Call("peak", (Num(float(n)),)),)),
              st.sampled_from(["energy", "width"]), st.integers(1, 3)),
    _windows.map(lambda w: Call("width", (Call("peak", (w,)),))),
    st.just(Call("count", (Ref("peaks"),))),
    st.builds(lambda f, w: Call(f, (w,)),
              st.sampled_from(["mean", "band", "sum", "max", "min", "centroid"]), _windows),
    st.builds(lambda w, b: Call("edge", (w,), (("background", b),)), _windows, _windows),
    st.floats(-5.0, 5.0).map(Num),
)
_exprs = st.recursive(_leaves, lambda inner: st.one_of(
    st.builds(BinOp, st.sampled_from("+-*/"), inner, inner),
    st.builds(Neg, inner),
    st.builds(lambda f, x: Call(f, (x,)), st.sampled_from(["abs", "log", "sqrt"]), inner),
    st.builds(lambda a, b: Call("ratio", (a, b)), inner, inner),
), max_leaves=4)
_values = st.one_of(st.floats(-1e3, 1e6), st.sampled_from([0.0, np.nan, np.inf, -np.inf]))


@settings(max_examples=40, deadline=None)
@given(expr=_exprs, spectrum=arrays(np.float64, 201, elements=_values))
def test_any_input_gives_a_value_or_a_per_point_failure(expr, spectrum) -> None:
    result = try_scalarize(expr, spectrum, AXIS)
    if result.ok:
        assert np.isfinite(result.value)
    else:
        assert result.failure.code in FAILURE_CODES
        assert result.failure.code not in ("internal_error", "bad_shape", "bad_context")
    values, failed = scalarize_many(expr, spectrum[None], AXIS)
    assert failed[0] == (not result.ok)
    assert np.isnan(values[0]) if failed[0] else values[0] == pytest.approx(result.value)
