"""What the simulated microscope replays: a `Dataset`, and the built-in synthetic ones.

A dataset is a survey image on the measurement grid plus, at every grid position, either a
spectrum (EELS/EDS, with its energy axis in eV) or a diffraction pattern (4D-STEM, with its
mrad-per-pixel calibration and unscattered-beam centre). Built-in datasets also carry the
ground truth of the physics that generated them (`truth`), so tests can check that a
scalarizer finds what was put there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dkl.instruments.protocols import Description

MODALITIES = ("eels", "eds", "4dstem")


@dataclass
class Dataset:
    """A survey image plus a spectrum or a diffraction pattern at every grid position.

    Attributes:
        name: Where it came from, e.g. "builtin:plasmonic" or a file name.
        modality: "eels", "eds" or "4dstem".
        image: (H, W) float32 survey on the measurement grid.
        spectra: (H, W, E) float32 (spectroscopy) or None.
        energy: (E,) float64 energy of each channel in eV, increasing (spectroscopy).
        patterns: (H, W, Qy, Qx) float32 (4D-STEM) or None.
        mrad_per_px: detector calibration (4D-STEM).
        center: unscattered-beam centre (cy, cx) in detector pixels (4D-STEM).
        pixel_size_nm: grid pixel size, None when the file had no calibration.
        truth: ground-truth maps (H, W) from the generating parameters (built-ins only).
        survey_original: the survey at its recorded resolution, kept for display.
        default_exposure: exposure (s) at which the stored data were recorded; the
            simulator scales counts by exposure / default_exposure.
        meta: free-form provenance (seed, source files, calibrations found).
    """

    name: str
    modality: str
    image: np.ndarray
    spectra: np.ndarray | None = None
    energy: np.ndarray | None = None
    patterns: np.ndarray | None = None
    mrad_per_px: float | None = None
    center: tuple[float, float] | None = None
    pixel_size_nm: float | None = None
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    survey_original: np.ndarray | None = None
    default_exposure: float = 0.01
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def shape(self) -> tuple[int, int]:
        """The measurement grid (height, width)."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    def validate(self) -> None:
        """Check shapes, dtypes and calibrations; raise ValueError saying what is wrong."""
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, not {self.modality!r}")
        if self.image.ndim != 2:
            raise ValueError(f"image must be 2-D (H, W), got shape {self.image.shape}")
        h, w = self.shape
        if self.modality == "4dstem":
            if self.patterns is None or self.patterns.ndim != 4:
                raise ValueError("a 4dstem dataset needs patterns of shape (H, W, Qy, Qx)")
            if self.patterns.shape[:2] != (h, w):
                raise ValueError(
                    f"patterns grid {self.patterns.shape[:2]} differs from image {(h, w)}"
                )
            if self.mrad_per_px is None or not self.mrad_per_px > 0:
                raise ValueError("a 4dstem dataset needs mrad_per_px > 0")
            if self.center is None:
                qy, qx = self.patterns.shape[2:]
                self.center = ((qy - 1) / 2.0, (qx - 1) / 2.0)
        else:
            if self.spectra is None or self.spectra.ndim != 3:
                raise ValueError(f"a {self.modality} dataset needs spectra of shape (H, W, E)")
            if self.spectra.shape[:2] != (h, w):
                raise ValueError(
                    f"spectra grid {self.spectra.shape[:2]} differs from image {(h, w)}"
                )
            if self.energy is None or self.energy.shape != (self.spectra.shape[2],):
                raise ValueError(
                    f"energy must have one value per channel ({self.spectra.shape[2]})"
                )
            if np.any(np.diff(self.energy) <= 0):
                raise ValueError("energy must be strictly increasing")
        for key, value in self.truth.items():
            if value.shape != (h, w):
                raise ValueError(f"truth map {key!r} has shape {value.shape}, not {(h, w)}")

    @property
    def signal_range(self) -> tuple[float, float]:
        """(low, high) of the signal axis: eV for spectra, mrad from the centre for patterns."""
        if self.modality == "4dstem":
            assert self.patterns is not None and self.center is not None
            qy, qx = self.patterns.shape[2:]
            cy, cx = self.center
            inscribed = min(cy, cx, qy - 1 - cy, qx - 1 - cx)  # full annuli exist up to here
            return (0.0, float(inscribed * float(self.mrad_per_px or 0.0)))
        assert self.energy is not None
        return (float(self.energy[0]), float(self.energy[-1]))

    def frame(self, x: int, y: int) -> np.ndarray:
        """The stored spectrum or pattern at grid position (x, y)."""
        source = self.patterns if self.modality == "4dstem" else self.spectra
        assert source is not None
        return source[y, x]

    def describe(self) -> Description:
        """The parts of an instrument description a dataset determines."""
        desc: Description = {
            "modality": self.modality,
            "shape": self.shape,
            "pixel_size_nm": self.pixel_size_nm,
            "signal_range": self.signal_range,
        }
        if self.modality == "4dstem":
            assert self.patterns is not None and self.center is not None
            desc["detector_shape"] = (int(self.patterns.shape[2]), int(self.patterns.shape[3]))
            desc["mrad_per_px"] = float(self.mrad_per_px or 0.0)
            desc["center"] = (float(self.center[0]), float(self.center[1]))
        else:
            assert self.energy is not None
            desc["energy"] = np.asarray(self.energy, dtype=np.float64)
        return desc


def _registry() -> dict[str, Callable[..., Dataset]]:
    from dkl.instruments import builtin_4dstem, builtin_coreloss, builtin_plasmonic

    return {
        "plasmonic": builtin_plasmonic.generate,
        "core-loss": builtin_coreloss.generate,
        "4dstem": builtin_4dstem.generate,
    }


def builtin_names() -> list[str]:
    """Names accepted by `load_builtin`."""
    return list(_registry())


def load_builtin(name: str, seed: int = 0, size: int = 64, **options: Any) -> Dataset:
    """Generate a built-in synthetic dataset, deterministically from `seed`.

    Args:
        name: "plasmonic", "core-loss" or "4dstem" (a leading "builtin:" is accepted).
        seed: random seed; equal seeds give identical datasets.
        size: survey/measurement grid is size x size.
        options: generator-specific options, e.g. `detector=32` for "4dstem".

    Example:
        >>> ds = load_builtin("plasmonic", seed=1, size=32)
        >>> ds.spectra.shape[:2]
        (32, 32)
    """
    name = name.removeprefix("builtin:")
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {sorted(registry)}")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    return registry[name](seed=seed, size=size, **options)
