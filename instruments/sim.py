"""The simulated microscope: replays a `Dataset` with a microscope's timing, dose and beam.

It behaves like the instrument the agent will meet: the probe moves and settles before the
exposure starts, the beam is blanked except while exposing, every exposure deposits dose
on a per-pixel map, counts scale with exposure (with shot noise if asked), and a
dead-man's switch blanks the beam when the agent goes silent. Waiting models physical
time, so it is a timed wait on an event that `close()` interrupts; `speed` scales it and
`speed=0` or `inf` removes it. `Faults` injects the failures tests need.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dkl.instruments.datasets import Dataset
from dkl.instruments.faults import Faults, ReplyDropped
from dkl.instruments.protocols import Description, InstrumentError, Measurement, Status, Survey

Listener = Callable[[str, Status], None]


@dataclass(frozen=True)
class Timing:
    """Physical durations in seconds (before `speed` scaling)."""

    settle_s: float = 0.002  # probe settling after any move
    settle_per_px_s: float = 5e-5  # extra settling per pixel travelled
    readout_s: float = 0.001  # detector readout after the exposure
    exposure_range: tuple[float, float] = (1e-6, 10.0)


@dataclass(frozen=True)
class Noise:
    """How counts are drawn: `kind` "none" replays the data scaled by exposure; "poisson"
    draws shot noise around that; `read_sigma` adds Gaussian read-out noise (counts)."""

    kind: str = "none"
    read_sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "poisson"):
            raise ValueError(f"noise kind must be 'none' or 'poisson', not {self.kind!r}")
        if self.read_sigma < 0:
            raise ValueError("read_sigma must not be negative")


class SimMicroscope:
    """An `Instrument` that replays a dataset (see the module docstring).

    Args:
        dataset: what to replay.
        speed: how much faster than real time to run; 0 or inf: no waiting at all.
        noise: counting noise model.
        timing: settle/readout durations and exposure limits.
        faults: failures to inject.
        deadman_s: blank the beam after this many seconds without a call (counted from
            the agent's first call); None: off.
        dose_rate: electron dose rate of the probe in e/A2 per second.
        seed: seed for noise and fault draws.
        on_die: called when `faults.die_after` strikes (default: raise and stay dead);
            the server passes a function that ends its process.

    Example:
        >>> sim = SimMicroscope(load_builtin("plasmonic", size=16), speed=0)
        >>> sim.acquire(3, 4, 0.01)["data"].shape
        (128,)
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        speed: float = 1.0,
        noise: Noise | str = "none",
        timing: Timing | None = None,
        faults: Faults | None = None,
        deadman_s: float | None = None,
        dose_rate: float = 1.0e4,
        seed: int = 0,
        on_die: Callable[[], None] | None = None,
    ) -> None:
        if not (speed >= 0):
            raise ValueError(f"speed must be >= 0 (0 or inf: no waiting), got {speed}")
        if deadman_s is not None and not deadman_s > 0:
            raise ValueError(f"deadman_s must be > 0 or None, got {deadman_s}")
        self.dataset = dataset
        self.speed = speed
        self.noise = Noise(noise) if isinstance(noise, str) else noise
        self.timing = timing or Timing()
        self.faults = faults or Faults()
        self.deadman_s = deadman_s
        self.dose_rate = dose_rate
        self._rng = np.random.default_rng(seed)
        self._on_die = on_die
        self._lock = threading.RLock()
        self._acquire_lock = threading.Lock()
        self._closed = threading.Event()
        self._listeners: list[Listener] = []
        self._dose = np.zeros(dataset.shape, dtype=np.float64)
        self._blanked = True
        self._blanked_by: str | None = None
        self._deadman_tripped = False
        self._position: tuple[int, int] | None = None
        self._acquiring = False
        self._count = 0
        self._busy = 0
        self._dead = False
        self._last_contact = time.monotonic()
        self._armed = False  # the dead-man's switch arms on the agent's first call
        self._t0 = time.monotonic()
        self._previous: np.ndarray | None = None
        self._free_since: float | None = None  # unblanked outside an acquisition since
        #: (requested (x, y), actual (x, y), fault or None) per acquisition, for tests.
        self.history: list[dict[str, Any]] = []
        self._watchdog: threading.Thread | None = None
        if deadman_s is not None:
            self._watchdog = threading.Thread(target=self._watch, name="deadman", daemon=True)
            self._watchdog.start()

    # --- the Instrument protocol -------------------------------------------------------

    def describe(self) -> Description:
        """Name, modality, grid, calibrations, limits and capabilities."""
        with self._call():
            desc = self.dataset.describe()
            desc["name"] = f"sim:{self.dataset.name}"
            desc["exposure_range"] = self.timing.exposure_range
            desc["default_exposure"] = float(self.dataset.default_exposure)
            desc["capabilities"] = ["blank", "dose", "status", "heartbeat"] + (
                ["deadman"] if self.deadman_s else []
            )
            if self.deadman_s is not None:
                desc["deadman_s"] = float(self.deadman_s)
            return desc

    def survey(self) -> Survey:
        """The structural image on the measurement grid."""
        with self._call():
            return {"image": self.dataset.image.copy(), "pixel_size_nm": self.dataset.pixel_size_nm}

    def acquire(self, x: int, y: int, exposure_s: float) -> Measurement:
        """Move the probe, let it settle, unblank, expose, blank, read out, return the data."""
        x, y, exposure_s = self._check_request(x, y, exposure_s)
        with self._call(), self._acquire_lock:
            index = self._count
            faults = self.faults
            if not self._blanked:
                self._set_blank(True, None)  # never drag an unblanked beam across the sample
            ax, ay = self._drifted(x, y)
            distance = 0.0 if self._position is None else math.dist(self._position, (ax, ay))
            with self._lock:
                self._position, self._acquiring = (ax, ay), True
            try:
                self._wait(faults.delay_s)
                self._wait(self.timing.settle_s + self.timing.settle_per_px_s * distance)
                settled_at = time.time()
                if faults.die_after is not None and index >= faults.die_after:
                    self._set_blank(False, None, track=False)
                    self._die(index)
                self._set_blank(False, None, track=False)
                exposure_start = time.time()
                self._wait(exposure_s)
                exposure_end = max(time.time(), exposure_start)
                self._set_blank(True, None, track=False)
                dose = self.dose_rate * exposure_s
                with self._lock:
                    self._dose[ay, ax] += dose
                    self._count += 1
                self._wait(self.timing.readout_s)
                data, fault = self._frame(ax, ay, exposure_s, index)
                if index in faults.hang_at:
                    self._wait(faults.hang_s, scaled=False)
            finally:
                with self._lock:
                    self._acquiring = False
                if not self._dead and not self._blanked:  # interrupted mid-exposure
                    self._set_blank(True, None, track=False)
            self.history.append({"requested": (x, y), "actual": (ax, ay), "fault": fault})
            if index in faults.drop_reply_at or self._draw(faults.drop_rate):
                raise ReplyDropped(index)
            return {
                "x": x,
                "y": y,
                "data": data,
                "settled_at": settled_at,
                "exposure_start": exposure_start,
                "exposure_end": exposure_end,
                "exposure_s": exposure_s,
                "dose": dose,
            }

    def blank(self) -> None:
        """Blank the beam."""
        with self._call():
            self._set_blank(True, None)

    def unblank(self) -> None:
        """Unblank the beam where the probe is; the dose it deposits there is counted."""
        with self._call():
            self._set_blank(False, None)

    def status(self) -> Status:
        """The instrument's state (a call from the agent: it resets the dead-man's switch)."""
        with self._call():
            return self.snapshot()

    def heartbeat(self) -> dict[str, Any]:
        """The agent is alive: reset the dead-man's switch."""
        with self._call():
            return {"time": time.time(), "deadman_s": self.deadman_s, "blanked": self._blanked}

    # --- for the server and tests --------------------------------------------------------

    def snapshot(self) -> Status:
        """The state without counting as contact from the agent (for publishers and tests)."""
        with self._lock:
            return {
                "blanked": self._blanked,
                "position": self._position,
                "acquiring": self._acquiring,
                "total_dose": float(self._dose.sum()) + self._pending_dose(),
                "acquisitions": self._count,
                "blanked_by": self._blanked_by,
                "deadman_tripped": self._deadman_tripped,
                "silence_s": 0.0 if self._busy else time.monotonic() - self._last_contact,
                "time": time.time(),
            }

    def dose_map(self) -> np.ndarray:
        """Dose delivered so far at every grid position, e/A2, (H, W) float64."""
        with self._lock:
            return self._dose.copy()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(event, status)` on every beam change ("blank", "unblank",
        "deadman", "died")."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """Stop the watchdog and interrupt any wait; later calls fail."""
        self._closed.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5.0)

    def __enter__(self) -> SimMicroscope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------

    def _check_request(self, x: Any, y: Any, exposure_s: Any) -> tuple[int, int, float]:
        h, w = self.dataset.shape
        try:
            xi, yi, t = int(x), int(y), float(exposure_s)
        except (TypeError, ValueError) as err:
            raise InstrumentError("bad_request", f"x, y must be integers: {err}") from err
        if xi != x or yi != y:
            raise InstrumentError("bad_request", f"position ({x}, {y}) is not integer pixels")
        if not (0 <= xi < w and 0 <= yi < h):
            raise InstrumentError("out_of_range", f"position ({xi}, {yi}) is outside {w}x{h}")
        low, high = self.timing.exposure_range
        if not (low <= t <= high):
            raise InstrumentError("bad_exposure", f"exposure {t} s is outside {low}..{high} s")
        return xi, yi, t

    def _call(self) -> _Contact:
        if self._closed.is_set():
            raise InstrumentError("closed", "the simulated microscope is closed")
        if self._dead:
            raise InstrumentError("instrument_died", "the instrument died", retryable=False)
        return _Contact(self)

    def _wait(self, seconds: float, scaled: bool = True) -> None:
        if seconds <= 0:
            return
        if scaled:
            if self.speed == 0 or math.isinf(self.speed):
                return
            seconds = seconds / self.speed
        if self._closed.wait(seconds):
            raise InstrumentError("closed", "the simulated microscope was closed mid-call")

    def _draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return bool(self._rng.random() < rate)

    def _drifted(self, x: int, y: int) -> tuple[int, int]:
        vx, vy = self.faults.drift_px_per_s
        if vx == 0 and vy == 0:
            return x, y
        elapsed = time.monotonic() - self._t0
        h, w = self.dataset.shape
        return (
            int(np.clip(round(x + vx * elapsed), 0, w - 1)),
            int(np.clip(round(y + vy * elapsed), 0, h - 1)),
        )

    def _frame(
        self, x: int, y: int, exposure_s: float, index: int
    ) -> tuple[np.ndarray, str | None]:
        """The data at (x, y) for this exposure, with noise and any data fault applied."""
        faults = self.faults
        if self._previous is not None and (
            index in faults.stale_at or self._draw(faults.stale_rate)
        ):
            return self._previous.copy(), "stale"
        scale = exposure_s / self.dataset.default_exposure
        expected = self.dataset.frame(x, y).astype(np.float64) * scale
        with self._lock:
            if self.noise.kind == "poisson":
                expected = self._rng.poisson(np.clip(expected, 0, None)).astype(np.float64)
            if self.noise.read_sigma > 0:
                expected = expected + self._rng.normal(0, self.noise.read_sigma, expected.shape)
        data = expected.astype(np.float32)
        fault = None
        if (x, y) in faults.nan_at or self._draw(faults.nan_rate):
            data[...] = np.nan
            fault = "nan"
        elif (x, y) in faults.saturate_at or self._draw(faults.saturate_rate):
            peak = float(np.nanmax(data)) if data.size else 0.0
            gain = faults.saturation / peak * 4 if peak > 0 else 1.0
            data = np.minimum(data * np.float32(gain) + 1, np.float32(faults.saturation))
            fault = "saturated"
        self._previous = data.copy()
        return data, fault

    def _set_blank(self, blanked: bool, by: str | None, track: bool = True) -> None:
        """Change the beam; outside acquisitions (`track`), dose accrues while unblanked."""
        with self._lock:
            changed = blanked != self._blanked or by is not None
            now = time.monotonic()
            if self._free_since is not None and (blanked or not track):
                self._deposit(now - self._free_since)
                self._free_since = None
            if not blanked and track and self._free_since is None:
                self._free_since = now
            self._blanked, self._blanked_by = blanked, (by if blanked else None)
            if by == "deadman":
                self._deadman_tripped = True
            listeners, status = list(self._listeners), self.snapshot()
        if changed:
            event = by or ("blank" if blanked else "unblank")
            for listener in listeners:
                listener(event, status)

    def _pending_dose(self) -> float:
        """Dose of the current free (outside acquisition) unblanking so far (lock held)."""
        if self._free_since is None or self._position is None:
            return 0.0
        return self.dose_rate * (time.monotonic() - self._free_since)

    def _deposit(self, seconds: float) -> None:
        """Dose of a beam left on the sample at the probe position for `seconds` (lock held)."""
        if self._position is not None and seconds > 0:
            x, y = self._position
            self._dose[y, x] += self.dose_rate * seconds

    def _die(self, index: int) -> None:
        self._dead = True
        with self._lock:
            listeners, status = list(self._listeners), self.snapshot()
        for listener in listeners:
            listener("died", status)
        if self._on_die is not None:
            self._on_die()
        raise InstrumentError("instrument_died", f"died during acquisition {index}")

    def _watch(self) -> None:
        """Watchdog: blank the beam when the agent has been silent longer than deadman_s."""
        assert self.deadman_s is not None
        while not self._closed.is_set():
            with self._lock:
                # armed by the agent's first call: before that there is nobody to watch
                idle = self._busy or not self._armed
                silence = 0.0 if idle else time.monotonic() - self._last_contact
                trip = silence >= self.deadman_s and not self._deadman_tripped
                remaining = self.deadman_s - silence if silence < self.deadman_s else self.deadman_s
            if trip:
                self._set_blank(True, "deadman")
            self._closed.wait(max(remaining, 0.005))


class _Contact:
    """Context manager marking an agent call in progress: the dead-man's switch holds."""

    def __init__(self, sim: SimMicroscope) -> None:
        self.sim = sim

    def __enter__(self) -> None:
        with self.sim._lock:
            self.sim._busy += 1
            self.sim._armed = True
            self.sim._last_contact = time.monotonic()
            self.sim._deadman_tripped = False

    def __exit__(self, *exc: object) -> None:
        with self.sim._lock:
            self.sim._busy -= 1
            self.sim._last_contact = time.monotonic()
