"""Scalarizers on real spectrum images from ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dkl.agent.scalarize import SpectrumAxis, scalarize_many
from dkl.dsl.plan import Call, Win

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.data


def _read(path: Path, reader: str) -> dict:
    if not path.exists():
        pytest.skip(f"{path} is not available")
    module = pytest.importorskip(f"rsciio.{reader}")
    return module.file_reader(str(path))[0]


def test_eels_ti_and_o_edges_on_a_real_spectrum_image() -> None:
    record = _read(DATA / "scifireaders_SI_EELS" / "SI-EELS_Spectrum_Image.dm3",
                   "digitalmicrograph")
    cube = np.moveaxis(record["data"], 0, -1)  # stored (E, y, x)
    axis = SpectrumAxis(350.0 + 0.5 * np.arange(cube.shape[-1]))
    ti = Call("edge", (Win(455.0, 475.0, "eV"),), (("background", Win(420.0, 450.0, "eV")),))
    o = Call("edge", (Win(530.0, 560.0, "eV"),), (("background", Win(490.0, 525.0, "eV")),))
    for expr in (ti, o):
        values, failed = scalarize_many(expr, cube, axis)
        assert values.shape == cube.shape[:2] and not failed.any()
        assert np.mean(values > 0) > 0.9
    # The Ti L3 and L2 white lines of this (uncalibrated-offset) data sit near 456 / 462 eV.
    l3, failed = scalarize_many(Call("energy", (Call("peak", (Win(453.0, 459.0, "eV"),)),)),
                                cube, axis)
    assert not failed.any() and 455.0 < np.median(l3) < 458.0
    l2, _ = scalarize_many(Call("energy", (Call("peak", (Win(459.5, 465.0, "eV"),)),)),
                           cube, axis)
    assert 460.0 < np.median(l2) < 464.0


def test_sparse_eds_line_ratio_fails_per_point_not_as_a_crash() -> None:
    record = _read(DATA / "particlespy_SiO2_EDS" / "SiO2_EDS_Spectrum_Image.hspy", "hspy")
    cube = record["data"]  # (128, 128, 2048) uint32, ~50 counts per pixel
    axis = SpectrumAxis(10.0 * np.arange(cube.shape[-1]))  # 10 eV per channel
    si = Call("sum", (Win(1640.0, 1840.0, "eV"),))
    o = Call("sum", (Win(450.0, 600.0, "eV"),))
    values, failed = scalarize_many(Call("ratio", (si, o)), cube, axis)
    assert values.shape == failed.shape == (128, 128)
    assert 0.0 < failed.mean() < 1.0  # no O counts at some pixels: a typed failure there
    assert np.all(np.isfinite(values[~failed])) and np.all(np.isnan(values[failed]))
    si_map, _ = scalarize_many(si, cube, axis)
    assert si_map.sum() == cube[..., 164:185].sum()  # 1640..1840 eV inclusive
