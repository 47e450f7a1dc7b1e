"""The instrument protocol on Nion Swift's instrumentation kit: a real microscope stack.

`NionInstrument` drives whatever a Nion Swift session has registered (a real STEM or
Nion's own simulator, `nionswift-usim`) through the kit's public objects only: the
STEM controller (`probe_position`, the `C_Blank` control), the scan hardware source
(survey from its HAADF channel) and one camera hardware source (EELS spectra or
Ronchigram frames). Nion's packages are optional (`pip install .[nion]`); they are
imported lazily so the rest of `dkl.instruments` never needs them.

Safety contract: the beam is blanked (`C_Blank` = 1, read back) whenever the adapter is
idle and unblanked only around one camera frame whose exposure starts after the probe
moved. Settings the adapter changes (scan size, camera exposure) are restored by
`close()`.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dkl.instruments import nion_calib as calib
from dkl.instruments import nion_frames as frames
from dkl.instruments.nion_config import NionConfig, require_nion
from dkl.instruments.protocols import Description, InstrumentError, Measurement, Status, Survey

__all__ = ["NionConfig", "NionInstrument", "require_nion"]


@dataclass
class _Calibration:
    """What the detector's metadata says about its axes, refreshed on every frame."""

    shape: tuple[int, ...] = ()
    energy: np.ndarray | None = None
    mrad_per_px: float | None = None
    center: tuple[float, float] | None = None


@dataclass
class _State:
    position: tuple[int, int] | None = None
    acquiring: bool = False
    acquisitions: int = 0
    stale_frames_dropped: int = 0
    total_dose: float = 0.0
    blanked: bool | None = None
    blanked_by: str | None = None
    #: The beam was unblanked by `unblank()` and not blanked since: the watchdog's business.
    left_on: bool = False
    last_contact: float = field(default_factory=time.time)


class NionInstrument:
    """An `Instrument` on a Nion Swift session's STEM controller, scan device and camera.

    Example:
        >>> inst = NionInstrument.from_registry(NionConfig(modality="eels"))  # in Swift
        >>> survey = inst.survey()["image"]          # (64, 64) HAADF
        >>> m = inst.acquire(10, 20, 0.05)           # spectrum at grid pixel x=10, y=20
        >>> inst.close()                             # blanks, restores settings
    """

    def __init__(
        self,
        stem: Any,
        scan: Any,
        camera: Any,
        config: NionConfig,
        *,
        name: str = "nion",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        require_nion()
        self.config = config
        self.name = name
        self._stem, self._scan, self._camera = stem, scan, camera
        self._on_close = on_close
        self._lock = threading.RLock()
        self._state = _State()
        self._listeners: list[Callable[[str, Status], None]] = []
        self._dose_map = np.zeros(config.shape, dtype=np.float64)
        self._cal = _Calibration()
        self._pixel_size_nm: float | None = None
        self._surveyed = False
        self._closed = False
        # what we change and give back in close()
        self._saved_probe = stem.probe_position
        self._saved_camera = copy.deepcopy(camera.get_current_frame_parameters())
        self._saved_scan = copy.deepcopy(scan.get_current_frame_parameters())
        self._scan_channel = self._find_scan_channel(config.scan_channel)
        self._saved_channel_enabled = scan.get_channel_enabled(self._scan_channel)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.blank()
        try:  # a blanked frame: learns the detector's shape and calibrations
            self._grab(config.default_exposure)
        except BaseException:
            camera.set_current_frame_parameters(self._saved_camera)
            raise
        if config.deadman_s is not None:
            self._watchdog = threading.Thread(target=self._watch, name="nion-deadman", daemon=True)
            self._watchdog.start()

    @classmethod
    def from_registry(cls, config: NionConfig | None = None, **kwargs: Any) -> NionInstrument:
        """Build the adapter on the devices registered in this process (Nion Swift or usim)."""
        require_nion()
        from nion.instrumentation import HardwareSource
        from nion.utils import Registry

        config = config or NionConfig()
        stem = Registry.get_component("stem_controller")
        if stem is None:
            raise InstrumentError("nion_no_stem", "no stem_controller is registered")
        manager = HardwareSource.HardwareSourceManager()

        def find(hs_id: str | None, component_type: str) -> Any:
            source = (
                manager.get_hardware_source_for_hardware_source_id(hs_id)
                if hs_id
                else Registry.get_component(component_type)
            )
            if source is None:
                raise InstrumentError("nion_no_device", f"no {hs_id or component_type} registered")
            return source

        scan = find(config.scan_id, "scan_hardware_source")
        if config.modality == "eels":
            camera = find(config.eels_camera_id, "eels_camera_hardware_source")
        else:
            camera = find(config.ronchigram_camera_id, "ronchigram_camera_hardware_source")
        return cls(stem, scan, camera, config, **kwargs)

    # -- Describable -------------------------------------------------------------------

    def describe(self) -> Description:
        cfg, cal = self.config, self._cal
        self._touch()
        capabilities = ["blank", "status", "heartbeat", "survey"]
        if self._beam_current() is not None:
            capabilities.append("dose")
        if cfg.deadman_s is not None:
            capabilities.append("deadman")
        d: Description = {
            "name": self.name,
            "modality": cfg.modality,
            "shape": cfg.shape,
            "pixel_size_nm": self._pixel_size_nm,
            "exposure_range": cfg.exposure_range,
            "default_exposure": cfg.default_exposure,
            "capabilities": capabilities,
        }
        if cfg.deadman_s is not None:
            d["deadman_s"] = cfg.deadman_s
        if cfg.modality == "eels":
            assert cal.energy is not None
            d["energy"] = cal.energy
            d["signal_range"] = (float(cal.energy[0]), float(cal.energy[-1]))
        else:
            assert cal.mrad_per_px is not None and cal.center is not None
            qy, qx = cal.shape
            d["detector_shape"] = (qy, qx)
            d["mrad_per_px"] = cal.mrad_per_px
            d["center"] = cal.center
            d["signal_range"] = (0.0, calib.inner_angle_mrad((qy, qx), cal.mrad_per_px, cal.center))
        return d

    # -- Surveyable --------------------------------------------------------------------

    def survey(self) -> Survey:
        """Scan one HAADF frame on the measurement grid; it becomes the probe's reference."""
        from nion.utils import Geometry

        h, w = self.config.shape
        self._touch()
        with self._lock:
            self._check_open()
            self.blank()
            self._stop_scan()
            params = copy.deepcopy(self._scan.get_current_frame_parameters())
            params.pixel_size = Geometry.IntSize(height=h, width=w)
            if self.config.fov_nm is not None:
                params.fov_nm = self.config.fov_nm
            # becoming the current parameters makes this frame the scan context that
            # `probe_position` fractions refer to.
            self._scan.set_current_frame_parameters(params)
            self._scan.set_channel_enabled(self._scan_channel, True)
            try:
                self._set_beam(blanked=False)  # HAADF needs the beam on the sample
                xdatas = self._scan.record_immediate(params, sync_timeout=self.config.timeout_s)
            except InstrumentError:
                raise
            except Exception as err:  # the kit raises bare Exceptions on timeouts
                raise InstrumentError("nion_scan", f"survey scan failed: {err}", True) from err
            finally:
                self.blank()
            xdata = self._scan_frame(xdatas)
            image = np.asarray(xdata.data, dtype=np.float32)
            if image.shape != (h, w):
                raise InstrumentError("nion_scan", f"survey is {image.shape}, expected {(h, w)}")
            cal = xdata.dimensional_calibrations[-1]
            self._pixel_size_nm = float(cal.scale) if cal.units == "nm" else None
            self._surveyed = True
            return {"image": image, "pixel_size_nm": self._pixel_size_nm}

    # -- Acquirable --------------------------------------------------------------------

    def acquire(self, x: int, y: int, exposure_s: float) -> Measurement:
        """Park the probe at grid pixel (x, y), unblank for one fresh frame, blank, return it."""
        from nion.utils import Geometry

        self._touch()
        x, y, exposure_s = self._check_request(x, y, exposure_s)
        with self._lock:
            self._check_open()
            if not self._surveyed:
                raise InstrumentError(
                    "no_survey", "call survey() first: positions are pixels of the survey scan"
                )
            self._state.acquiring = True
            try:
                self.blank()
                self._stop_scan()  # a scanning beam is not parked where we ask
                fy, fx = calib.probe_fraction(x, y, self.config.shape)
                self._stem.probe_position = Geometry.FloatPoint(y=fy, x=fx)
                if self._stem.probe_state == "scanning":
                    raise InstrumentError("nion_probe", "the probe is scanning, not parked")
                settled_at = time.time()
                self._state.position = (x, y)
                try:
                    self._set_beam(blanked=False)
                    data, start, end, actual_s = self._grab(exposure_s)
                finally:
                    self.blank()
            finally:
                self._state.acquiring = False
            dose = calib.dose_per_pixel(self._beam_current(), actual_s, self._pixel_size_nm)
            self._state.acquisitions += 1
            self._state.total_dose += dose
            self._dose_map[y, x] += dose
            return {
                "x": x,
                "y": y,
                "data": data,
                "settled_at": settled_at,
                "exposure_start": start,
                "exposure_end": end,
                "exposure_s": actual_s,
                "dose": dose,
            }

    # -- Blankable ---------------------------------------------------------------------

    def blank(self) -> None:
        """Set `C_Blank` and read it back; a blanker that does not answer is an error."""
        self._touch()
        self._set_beam(blanked=True)

    def unblank(self) -> None:
        """Unblank on request (e.g. for the operator); the next acquisition ends blanked."""
        self._touch()
        with self._lock:
            self._check_open()
            self._set_beam(blanked=False)
            self._state.left_on = True

    def read_blank(self) -> bool | None:
        """The blanker as the microscope reports it (None when it has no `C_Blank`)."""
        ok, value = self._stem.TryGetVal("C_Blank")
        return bool(value) if ok and value is not None else None

    # -- Monitorable -------------------------------------------------------------------

    def status(self) -> Status:
        self._touch()
        return self.snapshot()

    def snapshot(self) -> Status:
        """The state without counting as contact from the agent (for publishers and tests)."""
        s = self._state
        return {
            "blanked": bool(self.read_blank()),
            "position": s.position,
            "acquiring": s.acquiring,
            "total_dose": s.total_dose,
            "acquisitions": s.acquisitions,
            "blanked_by": s.blanked_by,
        }

    def dose_map(self) -> np.ndarray:
        """Dose delivered so far at every grid position, e/A2, (H, W) float64."""
        with self._lock:
            return self._dose_map.copy()

    @property
    def stale_frames_dropped(self) -> int:
        """Frames the camera delivered that began before the request (dropped, not used)."""
        return self._state.stale_frames_dropped

    def subscribe(self, listener: Callable[[str, Status], None]) -> None:
        """Call `listener(event, status)` on every beam change ("blank", "unblank",
        "deadman", "close"), as the generic instrument server expects."""
        self._listeners.append(listener)

    def heartbeat(self) -> dict[str, Any]:
        self._touch()
        return {
            "time": self._state.last_contact,
            "deadman_s": self.config.deadman_s,
            "blanked": bool(self.read_blank()),
        }

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Blank, stop the watchdog, give back probe, scan and camera settings."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=self.config.timeout_s)
        try:
            with self._lock:
                self._set_beam(blanked=True, by="close")
                self._camera.set_current_frame_parameters(self._saved_camera)
                self._scan.set_current_frame_parameters(self._saved_scan)
                self._scan.set_channel_enabled(self._scan_channel, self._saved_channel_enabled)
                self._stem.probe_position = self._saved_probe
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> NionInstrument:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _touch(self) -> None:
        self._state.last_contact = time.time()

    def _watch(self) -> None:
        """Watchdog: blank a beam that `unblank()` left on once the agent is silent for deadman_s.

        Only the adapter's own `unblank()` arms it: a beam the operator unblanked in Swift,
        or one another client is exposing with, is none of its business.
        """
        deadman_s = self.config.deadman_s
        assert deadman_s is not None
        while not self._stop.wait(deadman_s / 4):
            silent = time.time() - self._state.last_contact
            if silent < deadman_s or not self._state.left_on:
                continue
            if self._lock.acquire(timeout=deadman_s):
                try:
                    if not self._closed and self._state.left_on:
                        self._set_beam(blanked=True, by="deadman")
                finally:
                    self._lock.release()

    def _check_request(self, x: Any, y: Any, exposure_s: Any) -> tuple[int, int, float]:
        """The same refusals, with the same codes, as the simulated microscope."""
        h, w = self.config.shape
        low, high = self.config.exposure_range
        try:
            xi, yi, t = int(x), int(y), float(exposure_s)
        except (TypeError, ValueError, OverflowError) as err:
            raise InstrumentError("bad_request", f"x, y must be integers: {err}") from err
        if xi != x or yi != y:
            raise InstrumentError("bad_request", f"position ({x}, {y}) is not integer pixels")
        if not (0 <= xi < w and 0 <= yi < h):
            raise InstrumentError("out_of_range", f"position ({xi}, {yi}) is outside {w}x{h}")
        if not (math.isfinite(t) and low <= t <= high):
            raise InstrumentError("bad_exposure", f"exposure {t} s is outside {low}..{high} s")
        return xi, yi, t

    def _check_open(self) -> None:
        if self._closed:
            raise InstrumentError("closed", "the Nion instrument adapter is closed")

    def _stop_scan(self) -> None:
        if self._scan.is_playing:
            self._scan.abort_playing(sync_timeout=self.config.timeout_s)

    def _set_beam(self, blanked: bool, by: str | None = None) -> None:
        """Write `C_Blank`, read it back, tell listeners when the beam changed."""
        was = self._state.blanked
        self._stem.SetVal("C_Blank", 1.0 if blanked else 0.0)
        if self.read_blank() is not blanked:
            word = "blanked" if blanked else "unblanked"
            raise InstrumentError("nion_blank", f"C_Blank did not read back as {word}")
        self._state.blanked = blanked
        if blanked:
            self._state.left_on = False
        if blanked and by is not None:
            self._state.blanked_by = by
        elif not blanked:
            self._state.blanked_by = None
        if was != blanked or by is not None:
            status = self.snapshot()
            for listener in list(self._listeners):
                listener(by or ("blank" if blanked else "unblank"), status)

    def _find_scan_channel(self, name: str) -> int:
        names = [self._scan.get_channel_name(i) for i in range(self._scan.get_channel_count())]
        if name not in names:
            raise InstrumentError("nion_no_channel", f"scan has no {name!r} channel: {names}")
        return names.index(name)

    def _scan_frame(self, xdatas: Any) -> Any:
        for xdata in xdatas or ():
            meta = xdata.metadata.get("hardware_source", {}) if xdata is not None else {}
            if meta.get("channel_index") == self._scan_channel:
                return xdata
        raise InstrumentError("nion_scan", f"no {self.config.scan_channel} frame came back")

    def _grab(self, exposure_s: float) -> tuple[np.ndarray, float, float, float]:
        """One camera frame whose exposure began after this call; refreshes calibrations."""
        frames.configure_camera(self._camera, exposure_s, self.config.binning)
        frame = frames.fresh_frame(
            self._camera,
            exposure_s,
            2 * exposure_s + self.config.timeout_s,
            skip_first=self.config.skip_first_frame,
        )
        self._state.stale_frames_dropped += frame.dropped
        return self._calibrate(frame.xdata), frame.start, frame.end, frame.exposure_s

    def _calibrate(self, xdata: Any) -> np.ndarray:
        """Reduce to the protocol's shape; calibrations come from this frame's metadata."""
        cals = xdata.dimensional_calibrations
        if self.config.modality == "eels":
            spectrum, energy = calib.spectrum_from_frame(xdata.data, cals)
            self._cal = _Calibration(spectrum.shape, energy)
            return spectrum
        data = np.asarray(xdata.data, dtype=np.float32)
        mrad, center = calib.diffraction_calibration(data.shape, cals, self.config.mrad_per_px)
        self._cal = _Calibration(data.shape, None, mrad, center)
        return data

    def _beam_current(self) -> float | None:
        if self.config.beam_current_control is None:
            return None
        ok, value = self._stem.TryGetVal(self.config.beam_current_control)
        return float(value) if ok and value is not None and value > 0 else None
