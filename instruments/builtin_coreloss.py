"""Built-in `core-loss`: an interface between a Ti oxide and an Fe oxide, 350-900 eV.

Each phase has its own power-law background (A E^-r) and L2,3 edges: Ti L3/L2 at 456/462 eV
in phase A, Fe L3/L2 at 708/721 eV in phase B, and the O K edge (532 eV) in both. Each edge
is a smoothed step (the continuum) plus two white lines. A wavy interface crosses the field
with a diffuse width of a couple of pixels; the HAADF survey shows it (Fe is heavier) on
top of a smooth thickness variation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dkl.instruments.datasets import Dataset

PIXEL_NM = 0.5
EDGES = {
    # name: (L3 onset eV, L2 onset eV or None, jump counts per unit thickness, white-line ratio)
    "ti": (456.0, 462.0, 6000.0, 1.8),
    "o": (532.0, None, 3000.0, 0.6),
    "fe": (708.0, 721.0, 2500.0, 2.2),
}


def _edge_shape(energy: np.ndarray, l3: float, l2: float | None, white: float) -> np.ndarray:
    """Unit-jump edge: smoothed step decaying as (E/E0)^-3 after onset, plus white lines."""
    step = 0.5 * (1 + np.tanh((energy - l3) / 1.0)) * (np.maximum(energy, l3) / l3) ** -3
    shape = step
    for onset, weight in ((l3, 1.0), (l2, 0.5)):
        if onset is not None:
            shape = shape + white * weight / (1 + ((energy - onset - 0.5) / 1.2) ** 2)
    return shape


def generate(seed: int = 0, size: int = 64, channels: int = 551, noise: bool = True) -> Dataset:
    """Generate the `core-loss` dataset (see the module docstring for the physics)."""
    rng = np.random.default_rng(seed)
    energy = np.linspace(350.0, 900.0, channels)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)

    # A wavy interface at an angle; phase B fraction rises across it over ~2 px.
    angle = rng.uniform(-0.4, 0.4)
    amp, period, phase = (
        rng.uniform(2, 5) * size / 64,
        rng.uniform(0.6, 1.2) * size,
        rng.uniform(0, 6.3),
    )
    line = (
        size / 2
        + np.tan(angle) * (rows - size / 2)
        + amp * np.sin(2 * np.pi * rows / period + phase)
    )
    frac_b = 1.0 / (1.0 + np.exp(-(cols - line) / 1.2))
    frac_a = 1.0 - frac_b

    thickness = 1.0 + 0.3 * ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 8) * 8
    thickness = np.clip(thickness, 0.5, 1.6)

    bg_a = (4.0e4, 3.0)  # (counts at 350 eV per unit thickness, power-law exponent r)
    bg_b = (5.0e4, 2.7)
    e_rel = energy / energy[0]
    background = thickness[..., None] * (
        frac_a[..., None] * bg_a[0] * e_rel ** -bg_a[1]
        + frac_b[..., None] * bg_b[0] * e_rel ** -bg_b[1]
    )
    jumps = {
        "ti": EDGES["ti"][2] * thickness * frac_a,
        "o": EDGES["o"][2] * thickness * (frac_a * 2.0 + frac_b * 1.5) / 2.0,
        "fe": EDGES["fe"][2] * thickness * frac_b,
    }
    intensity = background
    for name, (l3, l2, _, white) in EDGES.items():
        intensity = intensity + jumps[name][..., None] * _edge_shape(energy, l3, l2, white)
    spectra = rng.poisson(intensity).astype(np.float32) if noise else intensity.astype(np.float32)

    z_contrast = frac_a * 1.0 + frac_b * 1.6
    image = thickness * z_contrast + rng.normal(0, 0.02, size=(size, size))
    truth = {
        "phase_b_fraction": frac_b.astype(np.float32),
        "thickness": thickness.astype(np.float32),
        "ti_edge": jumps["ti"].astype(np.float32),
        "o_edge": jumps["o"].astype(np.float32),
        "fe_edge": jumps["fe"].astype(np.float32),
        "background_exponent": (frac_a * bg_a[1] + frac_b * bg_b[1]).astype(np.float32),
    }
    return Dataset(
        name="builtin:core-loss",
        modality="eels",
        image=image.astype(np.float32),
        spectra=spectra,
        energy=energy,
        pixel_size_nm=PIXEL_NM,
        truth=truth,
        default_exposure=0.05,
        meta={"seed": seed, "edges_eV": {k: (v[0], v[1]) for k, v in EDGES.items()}},
    )
