"""Built-in `4dstem`: diffraction patterns whose discs move with the sample's fields.

Two pieces of physics, both as the textbooks have them:

- centre of mass / DPC: the beam is deflected by -sigma * grad(V) of the projected
  potential V, so the whole pattern (central disc and Bragg discs) shifts by that angle;
- strain: the Bragg-disc spacing is g0 / (1 + eps) for an isotropic strain eps, here from
  a misfitting inclusion (eps0 inside, eps0 (R/r)^2 outside) plus a gentle gradient.

Discs are rendered with anti-aliased edges so sub-pixel shifts are visible in the
centre of mass. The survey (HAADF-like) is the projected potential itself.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dkl.instruments.datasets import Dataset

PIXEL_NM = 0.5
ALPHA_MRAD = 12.0  # probe convergence semi-angle = disc radius
G0_MRAD = 35.0  # unstrained Bragg spacing
REACH_MRAD = 105.0  # detector half-width
MAX_DEFLECTION_MRAD = 3.0
ELECTRONS = 2.0e5  # per pattern, for the Poisson noise


def _fields(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected potential V (0..1), isotropic strain eps, inclusion mask."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    radius = rng.uniform(0.12, 0.2) * size
    r = np.hypot(rows - cy, cols - cx)
    inclusion = r <= radius
    eps0 = rng.choice([-1, 1]) * rng.uniform(0.02, 0.04)
    strain = np.where(inclusion, eps0, eps0 * (radius / np.maximum(r, 1e-9)) ** 2)
    strain = strain + 0.01 * (cols / size - 0.5)

    potential = 0.6 * ndimage.gaussian_filter(inclusion.astype(np.float64), 1.5)
    for _ in range(max(3, size // 10)):
        by, bx = rng.uniform(0, size, size=2)
        width = rng.uniform(1.5, 4.0) * size / 64
        potential += rng.uniform(0.2, 0.5) * np.exp(
            -((rows - by) ** 2 + (cols - bx) ** 2) / (2 * width**2)
        )
    potential += 0.1 * ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 16) * 4
    potential = (potential - potential.min()) / (np.ptp(potential) or 1.0)
    return potential, strain, inclusion


def _add_disc(
    patterns: np.ndarray, cy: np.ndarray, cx: np.ndarray, radius: float, weight: np.ndarray
) -> None:
    """Add an anti-aliased disc per pattern (N, Qy, Qx) at centres (N,) with weights (N,)."""
    n, qy, qx = patterns.shape
    half = int(np.ceil(radius)) + 1
    offs = np.arange(-half, half + 1)
    oy = np.floor(cy).astype(np.int64)[:, None] + offs  # (N, w)
    ox = np.floor(cx).astype(np.int64)[:, None] + offs
    dist = np.hypot(oy[:, :, None] - cy[:, None, None], ox[:, None, :] - cx[:, None, None])
    value = np.clip(radius - dist + 0.5, 0.0, 1.0) * weight[:, None, None]
    iy = np.broadcast_to(oy[:, :, None], value.shape)
    ix = np.broadcast_to(ox[:, None, :], value.shape)
    keep = (iy >= 0) & (iy < qy) & (ix >= 0) & (ix < qx)
    index = np.broadcast_to(np.arange(n)[:, None, None], value.shape)
    flat = patterns.reshape(-1)
    flat[((index * qy + iy) * qx + ix)[keep]] += value[keep]


def generate(seed: int = 0, size: int = 64, detector: int = 64, noise: bool = True) -> Dataset:
    """Generate the `4dstem` dataset (see the module docstring for the physics)."""
    if detector < 16:
        raise ValueError(f"detector must be at least 16 pixels, got {detector}")
    rng = np.random.default_rng(seed)
    potential, strain, inclusion = _fields(size, rng)
    mrad_per_px = REACH_MRAD / ((detector - 1) / 2.0)
    centre = ((detector - 1) / 2.0, (detector - 1) / 2.0)

    gy, gx = np.gradient(potential)
    scale = MAX_DEFLECTION_MRAD / (np.hypot(gx, gy).max() or 1.0)
    com_x, com_y = -scale * gx, -scale * gy  # mrad, x along columns

    n = size * size
    patterns = np.zeros((n, detector, detector), dtype=np.float32)
    shift_y = centre[0] + (com_y / mrad_per_px).reshape(-1)
    shift_x = centre[1] + (com_x / mrad_per_px).reshape(-1)
    spacing = (G0_MRAD / (1.0 + strain) / mrad_per_px).reshape(-1)
    bragg = (0.15 + 0.35 * potential).reshape(-1)
    radius = ALPHA_MRAD / mrad_per_px
    limit = REACH_MRAD - ALPHA_MRAD - 5.0
    for i in range(-2, 3):
        for j in range(-2, 3):
            g = G0_MRAD * np.hypot(i, j)
            if g > limit:
                continue
            weight = np.ones(n) if g == 0 else bragg * np.exp(-g / 40.0)
            _add_disc(patterns, shift_y + i * spacing, shift_x + j * spacing, radius, weight)
    patterns *= np.float32(ELECTRONS / patterns.sum(axis=(1, 2)).mean())
    if noise:
        patterns = rng.poisson(patterns).astype(np.float32)
    patterns = patterns.reshape(size, size, detector, detector)

    image = (potential + rng.normal(0, 0.01, size=potential.shape)).astype(np.float32)
    truth = {
        "potential": potential.astype(np.float32),
        "com_x": com_x.astype(np.float32),
        "com_y": com_y.astype(np.float32),
        "com_magnitude": np.hypot(com_x, com_y).astype(np.float32),
        "com_angle": np.arctan2(com_y, com_x).astype(np.float32),
        "strain": strain.astype(np.float32),
        "bragg_spacing_mrad": (G0_MRAD / (1.0 + strain)).astype(np.float32),
        "inclusion_mask": inclusion.astype(np.float32),
    }
    return Dataset(
        name="builtin:4dstem",
        modality="4dstem",
        image=image,
        patterns=patterns,
        mrad_per_px=mrad_per_px,
        center=centre,
        pixel_size_nm=PIXEL_NM,
        truth=truth,
        default_exposure=0.001,
        meta={"seed": seed, "alpha_mrad": ALPHA_MRAD, "g0_mrad": G0_MRAD, "electrons": ELECTRONS},
    )
