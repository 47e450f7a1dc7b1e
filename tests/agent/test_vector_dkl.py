"""The vector (whole-spectrum) deep-kernel GP on synthetic patches and spectra."""

from __future__ import annotations

import numpy as np
import pytest

from dkl.agent.models.vector_dkl import VectorDKL
from dkl.dsl.plan import ModelSpec

D, E = 8, 40


def spectra(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian peak whose height and position follow two directions of the patch."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, D))
    energy = np.linspace(0.0, 1.0, E)
    height = 1.0 + 0.8 * np.tanh(2.0 * x[:, 0])
    centre = 0.5 + 0.15 * x[:, 1]
    y = height[:, None] * np.exp(-0.5 * ((energy - centre[:, None]) / 0.08) ** 2)
    return x, y + 0.01 * rng.standard_normal(y.shape)


def test_reconstructs_held_out_spectra():
    x, y = spectra(80, seed=0)
    xt, yt = spectra(30, seed=1)
    model = VectorDKL(ModelSpec(embed=2, hidden=(16,), steps=150, lr=0.02), D, seed=0,
                      n_components=3)
    report = model.fit(x, y)
    assert report.steps == 150 and np.isfinite(report.loss)
    mean, std = model.predict(xt, batch_size=16)  # two batches, the last one padded
    assert mean.shape == std.shape == (30, E)
    assert np.all(std > 0) and np.all(np.isfinite(mean))
    baseline = np.mean((yt - y.mean(axis=0)) ** 2)
    r2 = 1.0 - np.mean((yt - mean) ** 2) / baseline
    assert r2 > 0.8, r2
    assert model.explained_variance_ratio is not None
    assert model.explained_variance_ratio.sum() > 0.9
    comp_mean, comp_std = model.predict_components(xt)
    assert comp_mean.shape == comp_std.shape == (30, 3)
    assert len(model.hyperparameters()["lengthscale"]) == 3


def test_deterministic_under_a_seed():
    x, y = spectra(25, seed=2)
    preds = []
    for _ in range(2):
        model = VectorDKL(ModelSpec(embed=2, hidden=(8,), steps=20), D, seed=4, n_components=2)
        model.fit(x, y)
        preds.append(model.predict(x[:5])[0])
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-6)


def test_bad_input():
    x, y = spectra(6, seed=3)
    model = VectorDKL(ModelSpec(steps=2), D, seed=0, n_components=3)
    with pytest.raises(RuntimeError):
        model.predict(x)
    with pytest.raises(ValueError, match="Y"):
        model.fit(x, y[:, 0])
    with pytest.raises(ValueError, match="components"):
        VectorDKL(ModelSpec(steps=2), D, seed=0, n_components=10).fit(x, y)
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(x, bad)
