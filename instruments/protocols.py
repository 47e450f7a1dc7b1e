"""The instrument protocol: what the agent may ask of a microscope, real or simulated.

Small typed `Protocol`s in the manner of bluesky's: the agent only ever talks to an
`Instrument`, so the simulated microscope, the Nion Swift adapter and the bus client are
interchangeable. Readings are `TypedDict`s so they travel on the bus as plain msgpack maps
(numpy arrays as raw buffers). Positions are measurement-grid pixels `(x, y)`; the
survey is presented on the same grid.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np


class Description(TypedDict, total=False):
    """What an instrument is and can do; returned by `describe()`."""

    #: Human name, e.g. "sim:builtin:plasmonic" or "nion:usim".
    name: str
    #: "eels", "eds" or "4dstem".
    modality: str
    #: Measurement grid (height, width); survey pixels map 1:1 onto it.
    shape: tuple[int, int]
    #: Grid pixel size in nm (None when uncalibrated).
    pixel_size_nm: float | None
    #: Spectra: energy of each channel in eV (float64, length E).
    energy: np.ndarray
    #: Diffraction: detector shape (Qy, Qx), mrad per detector pixel, unscattered-beam
    #: centre (cy, cx) in detector pixels.
    detector_shape: tuple[int, int]
    mrad_per_px: float
    center: tuple[float, float]
    #: Signal range the checker validates windows against: (low, high) in eV or mrad.
    signal_range: tuple[float, float]
    #: Exposure limits in seconds and the default exposure.
    exposure_range: tuple[float, float]
    default_exposure: float
    #: Capabilities, e.g. ["blank", "dose", "status"].
    capabilities: list[str]
    #: Seconds of agent silence after which the server blanks the beam by itself.
    deadman_s: float


class Survey(TypedDict):
    """The structural (HAADF) image on the measurement grid."""

    image: np.ndarray  # (H, W) float32
    pixel_size_nm: float | None


class Measurement(TypedDict):
    """One acquisition at one position."""

    x: int
    y: int
    #: (E,) spectrum or (Qy, Qx) diffraction pattern.
    data: np.ndarray
    #: Wall-clock times (s since the epoch): the probe settled, exposure start and end.
    settled_at: float
    exposure_start: float
    exposure_end: float
    exposure_s: float
    #: Electron dose delivered by this exposure (e/A2).
    dose: float


class Status(TypedDict, total=False):
    """State of the instrument."""

    blanked: bool
    position: tuple[int, int] | None
    acquiring: bool
    total_dose: float
    acquisitions: int
    #: Why the beam was last blanked by the instrument itself (e.g. "deadman"), if it was.
    blanked_by: str | None
    #: The dead-man's switch fired since the agent's last call.
    deadman_tripped: bool
    #: Seconds since the agent's last call ended (0 while a call is in progress).
    silence_s: float
    #: Wall-clock time of this status (s since the epoch).
    time: float


@runtime_checkable
class Describable(Protocol):
    def describe(self) -> Description: ...


@runtime_checkable
class Surveyable(Protocol):
    def survey(self) -> Survey: ...


@runtime_checkable
class Acquirable(Protocol):
    def acquire(self, x: int, y: int, exposure_s: float) -> Measurement:
        """Move the probe, wait for it to settle, unblank, expose, blank, return the data."""
        ...


@runtime_checkable
class Blankable(Protocol):
    def blank(self) -> None: ...

    def unblank(self) -> None: ...


@runtime_checkable
class Monitorable(Protocol):
    def status(self) -> Status: ...

    def heartbeat(self) -> dict[str, Any]:
        """Tell the instrument the agent is alive (resets the dead-man's switch)."""
        ...


@runtime_checkable
class Instrument(Describable, Surveyable, Acquirable, Blankable, Monitorable, Protocol):
    """Everything the agent needs from a microscope."""


class InstrumentError(Exception):
    """A structured instrument failure: `code`, `message`, and whether a retry may succeed."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}
