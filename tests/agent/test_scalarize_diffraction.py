"""Diffraction scalarizers against analytic patterns (dkl.agent.scalarize, .diffraction)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dkl.agent.scalarize import DetectorGeometry, ScalarizeError, scalarize, scalarize_many
from dkl.dsl.plan import BinOp, Call, Num, Ref, Win

GEOMETRY = DetectorGeometry(mrad_per_px=0.5, center=(32.0, 32.0))


def disc(dx: float = 0.0, dy: float = 0.0, radius: float = 6.0, size: int = 64) -> np.ndarray:
    """A uniform bright-field disc centred `(dx, dy)` px from the beam centre."""
    yy, xx = np.mgrid[0:size, 0:size]
    inside = np.hypot(xx - 32.0 - dx, yy - 32.0 - dy) <= radius
    return np.where(inside, 100.0, 0.0)


def code_of(expr, data, context=GEOMETRY) -> str:
    with pytest.raises(ScalarizeError) as info:
        scalarize(expr, data, context)
    return info.value.code


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (0, 5), (-4, 0), (-1, -1)])
def test_com_of_a_shifted_disc_in_mrad(dx: int, dy: int) -> None:
    pattern = disc(dx, dy)
    x, y = 0.5 * dx, 0.5 * dy  # mrad
    assert scalarize(Ref("com.x"), pattern, GEOMETRY) == pytest.approx(x, abs=1e-9)
    assert scalarize(Ref("com.y"), pattern, GEOMETRY) == pytest.approx(y, abs=1e-9)
    assert scalarize(Ref("com.magnitude"), pattern, GEOMETRY) == pytest.approx(math.hypot(x, y))
    assert scalarize(Ref("com.angle"), pattern, GEOMETRY) == pytest.approx(math.atan2(y, x))


def test_com_is_relative_to_the_calibrated_centre() -> None:
    off_centre = DetectorGeometry(mrad_per_px=2.0, center=(30.5, 33.0))
    pattern = disc()  # centred at (32, 32)
    assert scalarize(Ref("com.x"), pattern, off_centre) == pytest.approx(2.0 * -1.0)
    assert scalarize(Ref("com.y"), pattern, off_centre) == pytest.approx(2.0 * 1.5)


def test_empty_pattern_has_no_com() -> None:
    for name in ("com.x", "com.y", "com.magnitude", "com.angle"):
        assert code_of(Ref(name), np.zeros((16, 16))) == "no_intensity"


# A 5 x 5 detector, beam at its centre, 1 mrad per px, every pixel a distinct power of 2,
# so each sum tells exactly which pixels were counted.
SMALL = DetectorGeometry(mrad_per_px=1.0, center=(2.0, 2.0))
CODES = (2.0 ** np.arange(25)).reshape(5, 5)


def pixels(*offsets: tuple[int, int]) -> float:
    return float(sum(CODES[2 + dy, 2 + dx] for dx, dy in offsets))


CROSS = [(0, 1), (0, -1), (1, 0), (-1, 0)]
DIAGONAL = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
AXIAL_2 = [(0, 2), (0, -2), (2, 0), (-2, 0)]


def test_vbf_sums_the_disc_inside_the_radius() -> None:
    def vbf(radius: float) -> float:
        return scalarize(Call("vbf", (Num(radius, "mrad"),)), CODES, SMALL)

    assert vbf(0.5) == pixels((0, 0))
    assert vbf(1.0) == pixels((0, 0), *CROSS)  # the edge is inclusive
    assert vbf(1.5) == pixels((0, 0), *CROSS, *DIAGONAL)  # sqrt(2) = 1.414


@pytest.mark.parametrize("fn", ["vadf", "vabf"])
def test_annular_detectors_sum_the_annulus(fn: str) -> None:
    value = scalarize(Call(fn, (Win(1.2, 2.0, "mrad"),)), CODES, SMALL)
    assert value == pixels(*DIAGONAL, *AXIAL_2)
    scaled = DetectorGeometry(mrad_per_px=0.25, center=(2.0, 2.0))  # radii are calibrated
    assert scalarize(Call(fn, (Win(0.3, 0.5, "mrad"),)), CODES, scaled) == value


def test_virtual_detectors_on_a_uniform_pattern_approach_the_area() -> None:
    uniform = np.ones((128, 128))
    geometry = DetectorGeometry(mrad_per_px=0.1, center=(63.5, 63.5))
    bf = scalarize(Call("vbf", (Num(4.0, "mrad"),)), uniform, geometry)
    assert bf == pytest.approx(math.pi * 40.0**2, rel=0.01)
    adf = scalarize(Call("vadf", (Win(2.0, 5.0, "mrad"),)), uniform, geometry)
    assert adf == pytest.approx(math.pi * (50.0**2 - 20.0**2), rel=0.01)


def test_annulus_outside_the_detector_is_empty() -> None:
    assert code_of(Call("vadf", (Win(50.0, 60.0, "mrad"),)), CODES, SMALL) == "empty_window"


def test_pattern_arithmetic_and_bad_data() -> None:
    pattern = disc(2, 0)
    contrast = BinOp("/", Call("vadf", (Win(3.0, 10.0, "mrad"),)),
                     Call("vbf", (Num(1.0, "mrad"),)))
    total = scalarize(Call("vadf", (Win(0.0, 100.0, "mrad"),)), pattern, GEOMETRY)
    assert total == pattern.sum()
    assert 0.0 < scalarize(contrast, pattern, GEOMETRY) < 10.0
    pattern[0, 0] = np.nan
    assert code_of(Ref("com.x"), pattern) == "bad_data"


@pytest.mark.parametrize(
    ("expr", "empty_fails"),
    [
        (Ref("com.x"), True),
        (Ref("com.angle"), True),
        (Call("vbf", (Num(3.0, "mrad"),)), False),
        (Call("vabf", (Win(1.0, 3.0, "mrad"),)), False),
        (Call("log", (Call("vadf", (Win(2.0, 20.0, "mrad"),)),)), True),
    ],
)
def test_vectorised_patterns_equal_per_point(expr, empty_fails: bool) -> None:
    rng = np.random.default_rng(0)
    stack = np.stack([rng.poisson(disc(dx, dy) + 1.0).astype(np.float32)
                      for dx, dy in [(0, 0), (3, 1), (-2, 4), (5, -5)]])
    stack = np.concatenate([stack, np.zeros((1, 64, 64), np.float32)])  # an empty pattern
    values, failed = scalarize_many(expr, stack.reshape(1, 5, 64, 64), GEOMETRY)  # any lead
    assert values.shape == failed.shape == (1, 5)
    assert failed.tolist() == [[False] * 4 + [empty_fails]]
    for i in range(4):
        assert values[0, i] == pytest.approx(scalarize(expr, stack[i], GEOMETRY), rel=1e-12)
    assert np.isnan(values[0, 4]) if empty_fails else values[0, 4] == 0.0
