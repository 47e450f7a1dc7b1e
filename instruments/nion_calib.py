"""From Nion frames and their metadata to the protocol's arrays, units and dose.

Pure functions on numpy arrays and calibration-like objects (anything with `offset`,
`scale` and `units`, as `nion.data.Calibration` has), so they are tested without Nion's
packages. `dkl.instruments.nion` applies them to every frame it grabs.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from dkl.instruments.protocols import InstrumentError

ELEMENTARY_CHARGE_C = 1.602176634e-19
#: Angular units a Ronchigram axis may carry, to mrad.
ANGLE_TO_MRAD = {"rad": 1e3, "mrad": 1.0, "urad": 1e-3, "µrad": 1e-3}
#: How far (s) a frame's timestamp-derived start may precede the request (clock grain).
CLOCK_TOLERANCE_S = 0.002


class CalibrationLike(Protocol):
    offset: float
    scale: float
    units: str


def probe_fraction(x: int, y: int, shape: tuple[int, int]) -> tuple[float, float]:
    """Grid pixel (x, y) -> Nion's probe position (y, x) as fractions of the last scan.

    Scan pixel i of N covers [i/N, (i+1)/N); the probe goes to its centre.
    """
    h, w = shape
    return (y + 0.5) / h, (x + 0.5) / w


def spectrum_from_frame(
    data: np.ndarray, calibrations: Sequence[CalibrationLike]
) -> tuple[np.ndarray, np.ndarray]:
    """An EELS frame (rows x energy, or already 1-D) -> (spectrum, energy axis in eV).

    Raises:
        InstrumentError: "nion_uncalibrated" when the last axis is not in eV.
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim not in (1, 2):
        raise InstrumentError("nion_camera", f"EELS frame has shape {data.shape}")
    cal = calibrations[-1]
    if cal.units != "eV" or not cal.scale:
        raise InstrumentError("nion_uncalibrated", f"EELS axis is in {cal.units!r}, not eV")
    spectrum = data.sum(axis=0, dtype=np.float32) if data.ndim == 2 else data
    energy = cal.offset + cal.scale * np.arange(spectrum.shape[0], dtype=np.float64)
    if cal.scale < 0:  # the protocol's energy axis increases
        return spectrum[::-1].copy(), energy[::-1].copy()
    return spectrum, energy


def diffraction_calibration(
    shape: tuple[int, ...],
    calibrations: Sequence[CalibrationLike],
    mrad_per_px: float | None = None,
) -> tuple[float, tuple[float, float]]:
    """A Ronchigram's (mrad per pixel, unscattered-beam centre (cy, cx) in pixels).

    Taken from the axes' angular calibration; `mrad_per_px` is the fallback for a camera
    whose metadata has none (the centre is then assumed at the detector's middle).

    Raises:
        InstrumentError: "nion_uncalibrated" when neither is available.
    """
    if len(shape) != 2:
        raise InstrumentError("nion_camera", f"Ronchigram frame has shape {shape}")
    cy, cx = calibrations[0], calibrations[1]
    factor = ANGLE_TO_MRAD.get(cx.units)
    if factor is not None and cx.scale and cy.scale:
        center = (-cy.offset / cy.scale, -cx.offset / cx.scale)
        return abs(cx.scale) * factor, center
    if mrad_per_px is not None:
        return float(mrad_per_px), ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    raise InstrumentError(
        "nion_uncalibrated", f"Ronchigram axes are in {cx.units!r}; set NionConfig.mrad_per_px"
    )


def inner_angle_mrad(
    shape: tuple[int, int], mrad_per_px: float, center: tuple[float, float]
) -> float:
    """Largest scattering angle the detector records in every direction."""
    cy, cx = center
    qy, qx = shape
    return max(0.0, min(cy, cx, qy - 1 - cy, qx - 1 - cx)) * mrad_per_px


def dose_per_pixel(
    current_a: float | None, exposure_s: float, pixel_size_nm: float | None
) -> float:
    """Incident electrons per Å² spread over one grid pixel; 0 when either is unknown."""
    if current_a is None or not pixel_size_nm or not current_a > 0:
        return 0.0
    electrons = current_a * exposure_s / ELEMENTARY_CHARGE_C
    return electrons / (pixel_size_nm * 10.0) ** 2


def epoch(timestamp: datetime.datetime | None) -> float | None:
    """Nion stamps data with naive UTC datetimes; return seconds since the epoch."""
    if timestamp is None:
        return None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=datetime.timezone.utc)
    return timestamp.timestamp()


def exposure_window(
    metadata: dict[str, Any],
    timestamp: datetime.datetime | None,
    requested_s: float,
    asked_at: float,
) -> tuple[float, float, float]:
    """(start, end, exposure_s) of a frame, from its end timestamp and exposure metadata.

    Raises:
        InstrumentError: "nion_stale_frame" (retryable) when the frame's exposure began
            before `asked_at`, the moment the adapter asked for a fresh frame.
    """
    actual_s = float(metadata.get("hardware_source", {}).get("exposure", requested_s))
    end = epoch(timestamp)
    if end is None or not math.isfinite(end):
        raise InstrumentError("nion_camera", "frame has no timestamp", True)
    start = end - actual_s
    if start < asked_at - CLOCK_TOLERANCE_S:
        raise InstrumentError(
            "nion_stale_frame",
            f"frame exposure began {asked_at - start:.3f} s before the request",
            True,
        )
    return max(start, asked_at), end, actual_s
