"""Diffraction-pattern physics for the scalarizers, vectorised over a stack `(N, Qy, Qx)`.

Angles are in mrad, measured from the unscattered-beam centre `(cy, cx)` in detector
pixels with a calibrated `mrad_per_px`. x runs along detector columns and y along detector
rows (downwards in the stored array), so `com.angle = atan2(com.y, com.x)` is measured in
the detector's own frame. Sums accumulate in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["annulus_mask", "center_of_mass", "detector_sum", "radius_map"]


def radius_map(
    shape: tuple[int, ...], mrad_per_px: float, center: tuple[float, float]
) -> np.ndarray:
    """Scattering angle (mrad) of every detector pixel centre, `(Qy, Qx)`."""
    cy, cx = center
    yy = np.arange(shape[0], dtype=float)[:, None] - cy
    xx = np.arange(shape[1], dtype=float)[None, :] - cx
    return np.hypot(yy, xx) * mrad_per_px


def annulus_mask(radius: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels whose centre lies at `low <= r <= high` mrad (a disc for `low = 0`)."""
    return (radius >= low) & (radius <= high)


def detector_sum(stack: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Virtual detector: the sum of each pattern over `mask`, `(N,)` float64."""
    flat = stack.reshape(len(stack), -1)
    return flat[:, mask.ravel()].sum(axis=1, dtype=np.float64)


def center_of_mass(
    stack: np.ndarray, mrad_per_px: float, center: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass `(x, y)` in mrad relative to the beam centre; NaN where total <= 0."""
    cy, cx = center
    rows = stack.sum(axis=2, dtype=np.float64)  # (N, Qy): intensity per row
    cols = stack.sum(axis=1, dtype=np.float64)  # (N, Qx)
    total = rows.sum(axis=1)
    good = total > 0
    safe = np.where(good, total, 1.0)
    y = rows @ np.arange(stack.shape[1], dtype=float) / safe - cy
    x = cols @ np.arange(stack.shape[2], dtype=float) / safe - cx
    nan = np.full(len(stack), np.nan)
    return np.where(good, x * mrad_per_px, nan), np.where(good, y * mrad_per_px, nan)
