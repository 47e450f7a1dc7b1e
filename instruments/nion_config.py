"""What the Nion adapter may use and how: `NionConfig`, and the check for Nion's packages.

Kept apart from the adapter so the command line and tests can build and validate a
configuration without touching (or having) Nion's instrumentation kit.
"""

from __future__ import annotations

from dataclasses import dataclass

from dkl.instruments.protocols import InstrumentError


def require_nion() -> None:
    """Import-check Nion's kit; raise a clear error naming the extra when it is missing."""
    try:
        import nion.instrumentation.stem_controller
        import nion.utils.Geometry  # noqa: F401
    except ImportError as err:
        raise InstrumentError(
            "nion_missing",
            "Nion Swift's instrumentation kit is not installed: pip install '.[nion]' "
            f"(nionswift-instrumentation, nionswift-usim) [{err}]",
        ) from err


@dataclass(frozen=True)
class NionConfig:
    """How to use the Nion session; every field has a safe default.

    Args:
        modality: "eels" (spectra from the EELS camera) or "4dstem" (Ronchigram frames).
        shape: measurement grid (height, width) = survey scan size in pixels.
        fov_nm: survey field of view; None keeps the scan's current one.
        scan_channel: name of the survey channel on the scan device.
        eels_camera_id / ronchigram_camera_id: hardware-source ids; None finds the camera
            registered as "eels_camera_hardware_source" / "ronchigram_camera_hardware_source".
        scan_id: scan hardware-source id; None finds the registered scan device.
        exposure_range / default_exposure: seconds accepted by `acquire`.
        timeout_s: longest wait for one frame beyond its exposure.
        beam_current_control: control read for the dose estimate (A); None: no dose.
        mrad_per_px: Ronchigram calibration override when the camera metadata has none.
        binning: camera binning while the adapter runs; None keeps the camera's own.
        skip_first_frame: drop the first frame after each request (see `nion_frames`);
            False only for a camera known to start every frame fresh.
        deadman_s: blank the beam when it was left unblanked (`unblank()`) and nobody
            called for this many seconds; None: no watchdog.
    """

    modality: str = "eels"
    shape: tuple[int, int] = (64, 64)
    fov_nm: float | None = None
    scan_channel: str = "HAADF"
    scan_id: str | None = None
    eels_camera_id: str | None = None
    ronchigram_camera_id: str | None = None
    exposure_range: tuple[float, float] = (0.001, 10.0)
    default_exposure: float = 0.02
    timeout_s: float = 10.0
    beam_current_control: str | None = "BeamCurrent"
    mrad_per_px: float | None = None
    binning: int | None = None
    skip_first_frame: bool = True
    deadman_s: float | None = 5.0

    def __post_init__(self) -> None:
        if self.modality not in ("eels", "4dstem"):
            raise ValueError(f"modality must be 'eels' or '4dstem', not {self.modality!r}")
        if len(self.shape) != 2 or min(self.shape) < 2:
            raise ValueError(f"shape must be (height, width) >= 2 pixels, not {self.shape!r}")
        if self.deadman_s is not None and not self.deadman_s > 0:
            raise ValueError(f"deadman_s must be > 0 or None, not {self.deadman_s}")
        if self.binning is not None and self.binning < 1:
            raise ValueError(f"binning must be >= 1, not {self.binning}")
        low, high = self.exposure_range
        if not 0 < low <= self.default_exposure <= high:
            raise ValueError("need 0 < exposure_range[0] <= default_exposure <= exposure_range[1]")
