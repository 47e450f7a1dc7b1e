"""Spectrum scalarizers against analytic spectra (dkl.agent.scalarize, dkl.agent.spectra)."""

from __future__ import annotations

import numpy as np
import pytest

from dkl.agent.scalarize import ScalarizeError, SpectrumAxis, scalarize, scalarize_many
from dkl.dsl.plan import BinOp, Call, Num, Ref, Win

ENERGY = np.linspace(0.0, 10.0, 301)  # 1/30 eV per channel
AXIS = SpectrumAxis(ENERGY)
# (centre eV, height, FWHM eV) of three well-separated peaks on a flat background of 20.
PEAKS = ((3.0, 100.0, 0.5), (6.0, 60.0, 0.8), (8.0, 40.0, 0.3))
BACKGROUND = 20.0


def gaussian(centre: float, height: float, fwhm: float, e: np.ndarray = ENERGY) -> np.ndarray:
    return height * np.exp(-4.0 * np.log(2.0) * ((e - centre) / fwhm) ** 2)


def lorentzian(centre: float, height: float, fwhm: float) -> np.ndarray:
    return height / (1.0 + ((ENERGY - centre) / (0.5 * fwhm)) ** 2)


def three_peaks() -> np.ndarray:
    return BACKGROUND + sum(gaussian(*p) for p in PEAKS)


def peak(n: int) -> Call:
    return Call("peak", (Num(float(n)),))


def of(fn: str, inner: Call) -> Call:
    return Call(fn, (inner,))


def win(fn: str, low: float, high: float) -> Call:
    return Call(fn, (Win(low, high, "eV"),))


def failure_code(expr, data, axis=AXIS) -> str:
    with pytest.raises(ScalarizeError) as info:
        scalarize(expr, data, axis)
    return info.value.code


# --- peaks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_gaussian_peaks_height_energy_and_fwhm(n: int) -> None:
    centre, height, fwhm = PEAKS[n - 1]
    spectrum = three_peaks()
    assert scalarize(Call("count", (Ref("peaks"),)), spectrum, AXIS) == 3.0
    assert scalarize(peak(n), spectrum, AXIS) == pytest.approx(BACKGROUND + height, rel=5e-3)
    assert scalarize(of("energy", peak(n)), spectrum, AXIS) == pytest.approx(centre, abs=2e-3)
    # Width at half height above the peak's base (the flat background here).
    assert scalarize(of("width", peak(n)), spectrum, AXIS) == pytest.approx(fwhm, rel=0.015)


def test_lorentzian_peak_off_the_channel_grid() -> None:
    spectrum = lorentzian(4.01, 50.0, 0.6)  # centre between channels
    assert scalarize(peak(1), spectrum, AXIS) == pytest.approx(50.0, rel=0.01)
    assert scalarize(of("energy", peak(1)), spectrum, AXIS) == pytest.approx(4.01, abs=2e-3)
    assert scalarize(of("width", peak(1)), spectrum, AXIS) == pytest.approx(0.6, rel=0.03)


def test_peaks_survive_poisson_noise() -> None:
    rng = np.random.default_rng(0)
    scale = 10.0  # counts: peak tops ~1200, background 200
    cube = rng.poisson(three_peaks() * scale, size=(60, len(ENERGY))).astype(float)
    counts, failed = scalarize_many(Call("count", (Ref("peaks"),)), cube, AXIS)
    assert not failed.any()
    assert np.mean(counts == 3) >= 0.95
    good = cube[counts == 3]
    for n, (centre, height, fwhm) in enumerate(PEAKS, start=1):
        heights, _ = scalarize_many(peak(n), good, AXIS)
        energies, _ = scalarize_many(of("energy", peak(n)), good, AXIS)
        widths, _ = scalarize_many(of("width", peak(n)), good, AXIS)
        assert np.median(heights) / scale == pytest.approx(BACKGROUND + height, rel=0.02)
        assert np.abs(energies - centre).max() < 0.025  # < 1 channel
        assert np.median(widths) == pytest.approx(fwhm, rel=0.06)


def test_pure_noise_has_no_peaks() -> None:
    rng = np.random.default_rng(1)
    for level in (0.5, 5.0, 500.0):
        cube = rng.poisson(level, size=(100, len(ENERGY))).astype(float)
        counts, _ = scalarize_many(Call("count", (Ref("peaks"),)), cube, AXIS)
        assert np.mean(counts == 0) >= 0.97, level


def test_peak_in_window_is_the_window_maximum() -> None:
    spectrum = three_peaks()
    expr = Call("peak", (Win(5.0, 7.0, "eV"),))
    assert scalarize(expr, spectrum, AXIS) == pytest.approx(BACKGROUND + 60.0, rel=5e-3)
    assert scalarize(of("energy", expr), spectrum, AXIS) == pytest.approx(6.0, abs=2e-3)
    assert scalarize(of("width", expr), spectrum, AXIS) == pytest.approx(0.8, rel=0.015)
    # On the rising flank the maximum sits at the window edge: no peak, so no width.
    flank = Call("peak", (Win(2.5, 2.8, "eV"),))
    assert scalarize(flank, spectrum, AXIS) == pytest.approx(spectrum[ENERGY <= 2.8][-1], rel=1e-2)
    assert failure_code(of("width", flank), spectrum) == "width_undefined"


def test_missing_peak_is_a_typed_failure() -> None:
    spectrum = three_peaks()
    for quantity in ("peak", "energy", "width"):
        expr = peak(4) if quantity == "peak" else of(quantity, peak(4))
        assert failure_code(expr, spectrum) == "no_peak"
    assert failure_code(peak(1), np.zeros_like(ENERGY)) == "no_peak"


# --- band statistics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "reference"),
    [("mean", np.mean), ("band", np.mean), ("sum", np.sum), ("max", np.max), ("min", np.min)],
)
def test_band_statistics(fn: str, reference) -> None:
    spectrum = three_peaks()
    inside = (ENERGY >= 2.5) & (ENERGY <= 3.5)
    assert inside.sum() == 31
    value = scalarize(win(fn, 2.5, 3.5), spectrum, AXIS)
    assert value == pytest.approx(reference(spectrum[inside]), rel=1e-12)


def test_centroid_of_a_symmetric_peak_is_its_centre() -> None:
    spectrum = gaussian(5.0, 10.0, 0.7) + 3.0
    assert scalarize(win("centroid", 4.0, 6.0), spectrum, AXIS) == pytest.approx(5.0, abs=1e-9)
    assert scalarize(win("centroid", 4.5, 7.0), spectrum, AXIS) > 5.0
    assert failure_code(win("centroid", 4.0, 6.0), np.zeros_like(ENERGY)) == "no_intensity"


def test_window_outside_the_axis_is_empty() -> None:
    for fn in ("mean", "centroid", "peak"):
        assert failure_code(win(fn, 20.0, 30.0), three_peaks()) == "empty_window"


# --- core-loss edge ------------------------------------------------------------------------

EDGE_E = np.arange(400.0, 500.0, 0.25)
EDGE_AXIS = SpectrumAxis(EDGE_E)
EDGE = Call("edge", (Win(455.0, 475.0, "eV"),), (("background", Win(420.0, 450.0, "eV")),))


def core_loss(step: float = 50.0) -> tuple[np.ndarray, float]:
    """Power-law background A*E^-r plus a step edge at 455 eV; its exact integral."""
    spectrum = 1e9 * EDGE_E**-3.0 + np.where(EDGE_E >= 455.0, step, 0.0)
    channels = (EDGE_E >= 455.0) & (EDGE_E <= 475.0)
    return spectrum, step * 0.25 * channels.sum()  # 81 channels of 0.25 eV


def test_edge_integral_after_power_law_background() -> None:
    spectrum, exact = core_loss()
    assert scalarize(EDGE, spectrum, EDGE_AXIS) == pytest.approx(exact, rel=1e-6)


def test_edge_integral_with_shot_noise_within_a_few_percent() -> None:
    rng = np.random.default_rng(2)
    spectrum, exact = core_loss()
    cube = rng.poisson(spectrum * 20.0, size=(20, len(EDGE_E))) / 20.0
    values, failed = scalarize_many(EDGE, cube, EDGE_AXIS)
    assert not failed.any()
    assert np.abs(values / exact - 1.0).max() < 0.05
    assert np.mean(values) == pytest.approx(exact, rel=0.02)


def test_edge_default_background_is_the_window_just_below() -> None:
    spectrum, exact = core_loss()
    bare = Call("edge", (Win(455.0, 475.0, "eV"),))
    assert scalarize(bare, spectrum, EDGE_AXIS) == pytest.approx(exact, rel=1e-6)


def test_edge_background_ending_at_the_edge_start_leaves_that_channel_to_the_signal() -> None:
    spectrum, exact = core_loss()  # the step starts exactly on the 455 eV channel
    touching = Call("edge", (Win(455.0, 475.0, "eV"),), (("background", Win(435.0, 455.0, "eV")),))
    assert scalarize(touching, spectrum, EDGE_AXIS) == pytest.approx(exact, rel=1e-6)


def test_edge_fit_failure_is_typed() -> None:
    spectrum, _ = core_loss()
    spectrum[(EDGE_E >= 420.0) & (EDGE_E <= 450.0)] = 0.0  # nothing positive to fit
    assert failure_code(EDGE, spectrum, EDGE_AXIS) == "fit_failed"


# --- arithmetic and failures ---------------------------------------------------------------


def test_arithmetic_and_math_functions() -> None:
    spectrum = three_peaks()
    p1, p2 = BACKGROUND + 100.0, BACKGROUND + 60.0
    diff = BinOp("-", peak(2), peak(1))
    assert scalarize(diff, spectrum, AXIS) == pytest.approx(p2 - p1, rel=1e-2)
    assert scalarize(Call("abs", (diff,)), spectrum, AXIS) == pytest.approx(p1 - p2, rel=1e-2)
    ratio = Call("ratio", (peak(1), peak(2)))
    assert scalarize(ratio, spectrum, AXIS) == pytest.approx(p1 / p2, rel=1e-2)
    assert scalarize(Call("log", (ratio,)), spectrum, AXIS) == pytest.approx(
        np.log(p1 / p2), abs=1e-2)
    assert scalarize(Call("sqrt", (peak(1),)), spectrum, AXIS) == pytest.approx(
        np.sqrt(p1), rel=1e-2)
    scaled = BinOp("*", Num(2.0), BinOp("+", win("sum", 0.0, 1.0), Num(1.0)))
    assert scalarize(scaled, spectrum, AXIS) == pytest.approx(
        2.0 * (spectrum[ENERGY <= 1.0].sum() + 1.0))


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        (Call("ratio", (peak(1), win("sum", 0.0, 1.0))), "zero_denominator"),
        (BinOp("/", Num(1.0), win("max", 0.0, 1.0)), "zero_denominator"),
        (Call("log", (win("min", 0.0, 1.0),)), "log_domain"),
        (Call("sqrt", (BinOp("-", Num(0.0), peak(1)),)), "sqrt_domain"),
    ],
)
def test_domain_failures_are_typed(expr, code: str) -> None:
    spectrum = three_peaks()
    spectrum[ENERGY <= 1.0] = 0.0
    assert failure_code(expr, spectrum) == code


@pytest.mark.parametrize(
    "expr",
    [peak(1), win("mean", 1.0, 2.0), Call("count", (Ref("peaks"),)), EDGE],
)
def test_nan_or_inf_data_is_bad_data(expr) -> None:
    for bad in (np.nan, np.inf):
        spectrum = three_peaks()
        spectrum[150] = bad
        axis = AXIS
        if expr is EDGE:
            spectrum, _ = core_loss()
            spectrum[10], axis = bad, EDGE_AXIS
        assert failure_code(expr, spectrum, axis) == "bad_data"


def test_integer_counts_are_accepted() -> None:
    spectrum = np.round(three_peaks() * 10).astype(np.int32)
    assert scalarize(Call("count", (Ref("peaks"),)), spectrum, AXIS) == 3.0
