"""Built-in datasets: deterministic, well-formed, and carrying the physics they claim."""

from __future__ import annotations

import numpy as np
import pytest

from dkl.instruments.datasets import Dataset, builtin_names, load_builtin


def _window(ds: Dataset, low: float, high: float) -> np.ndarray:
    assert ds.energy is not None and ds.spectra is not None
    sel = (ds.energy >= low) & (ds.energy <= high)
    return ds.spectra[..., sel]


@pytest.mark.parametrize("name", ["plasmonic", "core-loss", "4dstem"])
def test_deterministic_and_well_formed(name: str) -> None:
    options = {"detector": 24} if name == "4dstem" else {}
    a = load_builtin(name, seed=3, size=24, **options)
    b = load_builtin(f"builtin:{name}", seed=3, size=24, **options)
    c = load_builtin(name, seed=4, size=24, **options)
    frames = a.patterns if a.modality == "4dstem" else a.spectra
    assert frames is not None and frames.dtype == np.float32 and frames.shape[:2] == (24, 24)
    assert a.image.shape == (24, 24) and a.image.dtype == np.float32
    assert np.isfinite(frames).all() and np.isfinite(a.image).all()
    np.testing.assert_array_equal(frames, b.patterns if b.modality == "4dstem" else b.spectra)
    assert not np.array_equal(a.image, c.image)
    assert a.truth and all(v.shape == (24, 24) for v in a.truth.values())
    assert a.pixel_size_nm and a.pixel_size_nm > 0


def test_names_and_bad_name() -> None:
    assert set(builtin_names()) == {"plasmonic", "core-loss", "4dstem"}
    with pytest.raises(ValueError, match="unknown built-in"):
        load_builtin("plasmon")


def test_plasmonic_modes_where_the_physics_puts_them() -> None:
    ds = load_builtin("plasmonic", seed=0, size=64, noise=False)
    t = ds.truth
    assert ds.energy is not None and ds.energy[0] < 0 < ds.energy[-1] and ds.energy[-1] >= 4.4
    inside = t["particle_mask"] > 0
    assert 0.05 < inside.mean() < 0.6
    # the survey shows the particles
    assert ds.image[inside].mean() > ds.image[~inside].mean() + 0.3
    # zero-loss peak at 0 eV dominates every spectrum
    assert ds.spectra is not None
    assert np.all(np.abs(ds.energy[ds.spectra.argmax(axis=2)]) < 0.1)
    # bulk plasmon inside, corner modes at corners, at their energies and lower than edge
    deep = t["bulk_height"] > 0.8 * t["bulk_height"].max()
    corner = t["distance_to_corner_px"] < 0.8
    bulk_mean = _window(ds, 3.5, 4.2).mean(-1)
    corner_mean = _window(ds, 1.2, 1.9).mean(-1)
    assert bulk_mean[deep].mean() > 2 * bulk_mean[~inside & (t["edge_height"] < 1)].mean()
    assert corner_mean[corner].mean() > 2 * corner_mean[deep].mean()
    assert np.all(t["corner_energy"] < t["edge_energy"]) and np.all(t["edge_energy"] < 3.0)
    assert np.all(t["bulk_energy"] > 3.5)
    # measured window heights follow the ground truth
    r = np.corrcoef(bulk_mean.ravel(), t["bulk_height"].ravel())[0, 1]
    assert r > 0.9


def test_core_loss_edges_follow_the_phases() -> None:
    ds = load_builtin("core-loss", seed=1, size=32)
    assert ds.energy is not None and ds.energy[0] <= 350 and ds.energy[-1] >= 900
    t = ds.truth

    def jump(onset: float) -> np.ndarray:
        """Edge signal above a power-law background fitted before the onset."""
        assert ds.energy is not None
        pre_e = ds.energy[(ds.energy >= onset - 40) & (ds.energy <= onset - 5)]
        post_e = ds.energy[(ds.energy >= onset + 15) & (ds.energy <= onset + 40)]
        log_pre = np.log(np.clip(_window(ds, pre_e[0], pre_e[-1]), 1, None))
        slope, intercept = np.polyfit(np.log(pre_e), log_pre.reshape(-1, pre_e.size).T, 1)
        background = np.exp(intercept[:, None] + slope[:, None] * np.log(post_e))
        post = _window(ds, post_e[0], post_e[-1]).reshape(-1, post_e.size)
        return (post - background).mean(-1).reshape(ds.shape)

    ti, fe = jump(456), jump(708)
    assert np.corrcoef(ti.ravel(), t["ti_edge"].ravel())[0, 1] > 0.8
    assert np.corrcoef(fe.ravel(), t["fe_edge"].ravel())[0, 1] > 0.8
    phase_b = t["phase_b_fraction"] > 0.5
    assert 0.1 < phase_b.mean() < 0.9, "the interface must cross the field"
    assert ds.image[phase_b].mean() > ds.image[~phase_b].mean()


def test_4dstem_com_and_strain_match_ground_truth() -> None:
    ds = load_builtin("4dstem", seed=2, size=24, detector=48)
    assert ds.patterns is not None and ds.mrad_per_px and ds.center
    assert ds.signal_range[1] >= 100.0, "the detector must reach 100 mrad"
    qy, qx = ds.patterns.shape[2:]
    yy, xx = np.mgrid[0:qy, 0:qx]
    total = ds.patterns.sum(axis=(2, 3))
    com_x = (ds.patterns * (xx - ds.center[1])).sum(axis=(2, 3)) / total * ds.mrad_per_px
    com_y = (ds.patterns * (yy - ds.center[0])).sum(axis=(2, 3)) / total * ds.mrad_per_px
    assert np.abs(com_x - ds.truth["com_x"]).max() < 0.5
    assert np.abs(com_y - ds.truth["com_y"]).max() < 0.5
    assert ds.truth["com_magnitude"].max() > 2.0
    np.testing.assert_allclose(
        ds.truth["com_magnitude"], np.hypot(ds.truth["com_x"], ds.truth["com_y"]), rtol=1e-5
    )
    # Bragg spacing: the first-order disc along +x sits at spacing / mrad_per_px
    cy, cx = ds.center
    spacing_px = ds.truth["bragg_spacing_mrad"] / ds.mrad_per_px
    band = ds.patterns[..., round(cy) - 1 : round(cy) + 2, :].sum(axis=2)
    radius_px = ds.meta["alpha_mrad"] / ds.mrad_per_px
    lo = int(cx + spacing_px.min() - radius_px - 1.5)
    hi = int(np.ceil(cx + spacing_px.max() + radius_px + 1.5))
    cols = np.arange(lo, hi)
    weights = band[..., lo:hi]
    measured = (weights * cols).sum(-1) / weights.sum(-1) - cx - ds.truth["com_x"] / ds.mrad_per_px
    assert np.corrcoef(measured.ravel(), spacing_px.ravel())[0, 1] > 0.9
