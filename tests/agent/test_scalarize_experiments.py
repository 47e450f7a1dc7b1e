"""Every example experiment's compiled scalarizer evaluates on plausible data.

The contract between `dkl.dsl` (which compiles the expression) and `dkl.agent.scalarize`
(which evaluates it): whatever the checker accepts must give a value on a sensible
measurement, never `bad_expression` or `bad_context`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dkl.agent.scalarize import DetectorGeometry, SpectrumAxis, try_scalarize
from dkl.dsl import BUILTIN, compile_source

EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.dkl"))


def spectrum_for(low: float, high: float) -> tuple[np.ndarray, SpectrumAxis]:
    """A power-law background, three peaks and an edge step across the signal range."""
    energy = np.linspace(low, high, 1024)
    span = high - low
    shifted = energy - low + 0.5 * span  # keep the power law finite at E <= 0
    spectrum = 1e3 * (shifted / span) ** -1.0
    for frac, height in ((0.3, 400.0), (0.5, 300.0), (0.7, 200.0)):
        spectrum += height * np.exp(-0.5 * ((energy - low - frac * span) / (0.02 * span)) ** 2)
    spectrum += np.where(energy >= low + 0.19 * span, 50.0, 0.0)
    return spectrum, SpectrumAxis(energy)


def pattern_for(high: float) -> tuple[np.ndarray, DetectorGeometry]:
    """A bright-field disc, slightly off centre, on a halo reaching `high` mrad."""
    size = 128
    geometry = DetectorGeometry(mrad_per_px=1.2 * high / (size / 2), center=(64.0, 64.0))
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - 65.0, xx - 62.0) * geometry.mrad_per_px
    return np.where(r <= 0.15 * high, 1e3, 10.0 * np.exp(-r / high)), geometry


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_example_scalarizer_evaluates(path: Path) -> None:
    result = compile_source(path.read_text(), str(path))
    if result.plan is None:
        missing = [d for d in result.errors if d.message.startswith("dataset file not found")]
        assert result.errors and missing == result.errors, result.errors
        pytest.skip(f"{path.name}: its dataset is absent (../shared/data is not here)")
    plan = result.plan
    facts = BUILTIN.get(plan.instrument.name)
    low, high = facts.signal_range if facts else (0.0, 20_000.0)
    if plan.modality == "4dstem":
        data, context = pattern_for(high)
    else:
        data, context = spectrum_for(low, high)
    outcome = try_scalarize(plan.scalarize, data, context)
    assert outcome.ok, (plan.scalarize_text, outcome.failure)
