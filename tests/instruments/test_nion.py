"""The Nion Swift adapter against Nion's own simulated STEM (nionswift-usim), headless.

The simulator tests skip unless the `nion` extra is installed (`pip install '.[nion]'`);
the calibration maths runs everywhere. What the simulator tests read back (C_Blank,
probe position, frames) comes from the simulator, not from the adapter.
"""

from __future__ import annotations

import datetime
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dkl.instruments import nion_calib as calib
from dkl.instruments.nion import NionConfig, NionInstrument
from dkl.instruments.nion_sim import start_simulated_nion
from dkl.instruments.protocols import Instrument, InstrumentError
from dkl.instruments.testing import check_instrument

#: (height, width). Square: usim draws a non-square scan over fov x fov*aspect but maps the
#: probe over fov/aspect x fov (scan_base.ScanFrameParameters vs ScanContext.fov_size_nm).
SHAPE = (32, 32)


@pytest.fixture(scope="module")
def eels() -> Iterator[NionInstrument]:
    pytest.importorskip("nion.instrumentation")
    pytest.importorskip("nion.usim_device")
    inst = start_simulated_nion(NionConfig(modality="eels", shape=SHAPE))
    try:
        inst.survey()
        yield inst
    finally:
        inst.close()


@pytest.fixture
def ronchigram(eels: NionInstrument) -> Iterator[NionInstrument]:
    """A second adapter on the same usim session, found the way a Swift plug-in finds it."""
    inst = NionInstrument.from_registry(NionConfig(modality="4dstem", shape=SHAPE, binning=8))
    try:
        inst.survey()
        yield inst
    finally:
        inst.close()


def _registered(component_type: str) -> Any:
    from nion.utils import Registry

    return Registry.get_component(component_type)


def _stem() -> Any:
    return _registered("stem_controller")


def _feature_and_vacuum(image: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Grid pixels (x, y) deep inside a flake and deep in vacuum (2 px from any edge).

    usim draws flakes with truncated pixel edges, so pixels next to an edge are ambiguous.
    """
    windows = np.lib.stride_tricks.sliding_window_view
    smooth = windows(np.pad(image, 1, mode="edge"), (3, 3)).mean(axis=(-2, -1))
    low = windows(np.pad(smooth, 2, mode="edge"), (5, 5)).min(axis=(-2, -1))
    high = windows(np.pad(smooth, 2, mode="edge"), (5, 5)).max(axis=(-2, -1))
    fy, fx = np.unravel_index(np.argmax(low), low.shape)
    vy, vx = np.unravel_index(np.argmin(high), high.shape)
    return (int(fx), int(fy)), (int(vx), int(vy))


class _BlankLog:
    """Every C_Blank change inside the simulator, with the time it happened."""

    def __init__(self, stem: Any) -> None:
        self.events: list[tuple[float, bool]] = []
        self._stem = stem
        self._lock = threading.Lock()
        self._listener: Any = stem.property_changed_event.listen(self._changed)

    def _changed(self, name: str) -> None:
        if name == "is_blanked":
            with self._lock:
                self.events.append((time.time(), self._stem.GetVal("C_Blank") == 1.0))

    def close(self) -> None:
        self._listener = None  # nion.utils drops a listener once it is unreferenced


@pytest.mark.slow
def test_it_is_an_instrument(eels: NionInstrument) -> None:
    assert isinstance(eels, Instrument)
    d = eels.describe()
    assert d["name"] == "nion:usim" and d["modality"] == "eels" and d["shape"] == SHAPE
    assert "dose" in d["capabilities"]


@pytest.mark.slow
def test_survey_is_haadf_on_the_measurement_grid(eels: NionInstrument) -> None:
    survey = eels.survey()
    image = survey["image"]
    assert image.shape == SHAPE and image.dtype == np.float32
    assert np.isfinite(image).all() and image.std() > 0.1  # flakes on vacuum, not noise only
    context = _stem().scan_context  # probe fractions refer to this frame
    assert (context.size.height, context.size.width) == SHAPE
    assert survey["pixel_size_nm"] == pytest.approx(context.fov_nm / max(SHAPE))
    assert eels.describe()["pixel_size_nm"] == survey["pixel_size_nm"]


@pytest.mark.slow
def test_survey_is_scanned_with_the_beam_on_then_blanked(
    eels: NionInstrument, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = _stem()
    generator = stem.scan_data_generator
    blanker_while_scanning: list[float] = []
    original = generator.generate_scan_data

    def logged(*args: Any) -> Any:
        blanker_while_scanning.append(stem.GetVal("C_Blank"))
        return original(*args)

    monkeypatch.setattr(generator, "generate_scan_data", logged)
    eels.survey()
    assert blanker_while_scanning and set(blanker_while_scanning) == {0.0}
    assert stem.GetVal("C_Blank") == 1.0


@pytest.mark.slow
def test_eels_axis_is_calibrated_in_ev_from_metadata(eels: NionInstrument) -> None:
    energy = eels.describe()["energy"]
    spectrum = eels.acquire(0, 0, 0.01)["data"]
    assert spectrum.ndim == 1 and spectrum.shape == energy.shape
    assert np.all(np.diff(energy) > 0)
    # the zero-loss peak sits at 0 eV on the calibrated axis
    assert abs(energy[int(np.argmax(spectrum))]) <= 2 * (energy[1] - energy[0])


@pytest.mark.slow
def test_spectra_follow_the_probe(eels: NionInstrument) -> None:
    image = eels.survey()["image"]
    feature, vacuum = _feature_and_vacuum(image)
    energy = eels.describe()["energy"]
    core = (energy > 40) & (energy < 150)
    # alternate so that a stale frame from the previous position would be caught
    for (x, y), on_flake in [(feature, True), (vacuum, False), (feature, True), (vacuum, False)]:
        m = eels.acquire(x, y, 0.01)
        assert (m["x"], m["y"]) == (x, y)
        loss = float(m["data"][core].sum()) / float(m["data"].sum())
        assert (loss > 0.01) if on_flake else (loss < 1e-4), (x, y, loss)


@pytest.mark.slow
def test_exposure_starts_after_the_probe_moved(
    eels: NionInstrument, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator logs where the probe was when it generated each frame."""
    camera = _registered("eels_camera_hardware_source").camera
    simulator = camera.simulator
    frames: list[tuple[float, Any]] = []
    original = simulator.get_frame_data

    def logged(*args: Any) -> Any:
        frames.append((time.time(), args[-1]))  # (generated at, parked probe position)
        return original(*args)

    monkeypatch.setattr(simulator, "get_frame_data", logged)
    for x, y in [(3, 5), (30, 20), (3, 5)]:
        before = len(frames)
        m = eels.acquire(x, y, 0.005)
        mine = frames[before:]
        assert mine, "no frame was generated during acquire"
        for generated_at, probe in mine:
            assert generated_at >= m["settled_at"]
            assert probe.x == pytest.approx((x + 0.5) / SHAPE[1])
            assert probe.y == pytest.approx((y + 0.5) / SHAPE[0])
        assert m["settled_at"] <= m["exposure_start"] < m["exposure_end"]
        assert m["exposure_s"] == pytest.approx(0.005)


@pytest.mark.slow
def test_every_frame_used_was_exposed_after_the_move_with_the_beam_on(
    eels: NionInstrument, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tag each frame usim computes; check the tag of every frame the adapter returns.

    The simulator is slowed down (computing a frame takes longer than its exposure, as on
    a busy machine), so frames overlap the adapter's stop/start and blank/unblank.
    """
    from nion.data import DataAndMetadata

    simulator = _registered("eels_camera_hardware_source").camera.simulator
    stem = _stem()
    computed: list[tuple[float, Any, float]] = []  # (started, probe, C_Blank) per frame
    busy = threading.Event()
    original = simulator.get_frame_data

    def tagged(*args: Any) -> Any:
        computed.append((time.time(), args[-1], stem.GetVal("C_Blank")))
        xdata = original(*args)
        busy.wait(0.03)
        tag = np.full(xdata.data.shape, float(len(computed)), np.float32)
        return DataAndMetadata.new_data_and_metadata(
            tag, dimensional_calibrations=xdata.dimensional_calibrations
        )

    monkeypatch.setattr(simulator, "get_frame_data", tagged)
    rows = eels._camera.get_expected_dimensions(
        eels._camera.get_current_frame_parameters().binning
    )[0]
    for x, y in [(3, 5), (30, 20), (3, 5), (12, 1), (30, 20)]:
        m = eels.acquire(x, y, 0.002)
        started, probe, blanker = computed[round(float(m["data"][0]) / rows) - 1]
        assert started >= m["settled_at"], "frame computed before the probe moved"
        assert (probe.x, probe.y) == pytest.approx(calib.probe_fraction(x, y, SHAPE)[::-1])
        assert blanker == 0.0, "frame computed with the beam blanked"


@pytest.mark.slow
def test_a_camera_left_playing_still_gives_a_fresh_frame(eels: NionInstrument) -> None:
    feature, vacuum = _feature_and_vacuum(eels.survey()["image"])
    energy = eels.describe()["energy"]
    core = (energy > 40) & (energy < 150)
    camera = _registered("eels_camera_hardware_source")
    eels.acquire(*feature, 0.01)
    camera.start_playing()  # the operator is watching the camera in Swift
    try:
        m = eels.acquire(*vacuum, 0.01)
        assert float(m["data"][core].sum()) / float(m["data"].sum()) < 1e-4
        assert camera.is_playing  # the adapter leaves the operator's view running
    finally:
        camera.stop_playing(sync_timeout=5.0)


@pytest.mark.slow
def test_beam_is_blanked_except_during_each_exposure(eels: NionInstrument) -> None:
    stem = _stem()
    log = _BlankLog(stem)
    try:
        measurements = []
        for x, y in [(1, 1), (10, 7), (31, 23)]:
            assert stem.GetVal("C_Blank") == 1.0  # blanked while idle
            measurements.append(eels.acquire(x, y, 0.01))
            assert stem.GetVal("C_Blank") == 1.0
    finally:
        log.close()
    unblanks = [t for t, blanked in log.events if not blanked]
    assert len(unblanks) == len(measurements)  # unblanked once per acquisition, never else
    for m, unblanked_at in zip(measurements, unblanks, strict=True):
        assert m["settled_at"] <= unblanked_at <= m["exposure_start"]
        reblanked = [t for t, blanked in log.events if blanked and t >= unblanked_at]
        assert reblanked and reblanked[0] >= m["exposure_end"]
    assert eels.status()["blanked"] is True


@pytest.mark.slow
def test_dose_and_status_accumulate(eels: NionInstrument) -> None:
    before = eels.status()
    m = eels.acquire(2, 3, 0.01)
    after = eels.status()
    current = _stem().GetVal("BeamCurrent")
    pixel_a = eels.describe()["pixel_size_nm"] * 10
    assert m["dose"] == pytest.approx(current * 0.01 / 1.602176634e-19 / pixel_a**2)
    assert after["acquisitions"] == before["acquisitions"] + 1
    assert after["total_dose"] == pytest.approx(before["total_dose"] + m["dose"])
    assert after["position"] == (2, 3) and after["acquiring"] is False
    assert eels.heartbeat()["blanked"] is True


@pytest.mark.slow
def test_ronchigram_frames_are_calibrated_in_mrad(ronchigram: NionInstrument) -> None:
    d = ronchigram.describe()
    assert d["modality"] == "4dstem" and d["detector_shape"] == (256, 256)  # 2048 / 8
    pixel_rad = ronchigram._camera.camera.get_dimensional_calibrations(None, None)[1].scale
    assert d["mrad_per_px"] == pytest.approx(abs(pixel_rad) * 1e3 * 8, rel=1e-6)
    assert d["center"] == pytest.approx((128.0, 128.0), abs=1.0)
    m = ronchigram.acquire(5, 6, 0.005)
    assert m["data"].shape == (256, 256) and m["data"].dtype == np.float32
    assert m["data"].max() > 0  # usim draws nothing while blanked: the beam was on
    assert _stem().GetVal("C_Blank") == 1.0


@pytest.mark.slow
def test_close_restores_what_it_changed(eels: NionInstrument) -> None:
    camera = _registered("ronchigram_camera_hardware_source")
    before = camera.get_current_frame_parameters()
    inst = NionInstrument.from_registry(NionConfig(modality="4dstem", binning=4))
    with pytest.raises(InstrumentError) as info:
        inst.acquire(0, 0, 0.003)
    assert info.value.code == "no_survey"
    inst.survey()
    inst.acquire(0, 0, 0.003)
    assert camera.get_current_frame_parameters().binning == 4
    inst.close()
    after = camera.get_current_frame_parameters()
    assert (after.binning, after.exposure_ms) == (before.binning, before.exposure_ms)
    assert _stem().GetVal("C_Blank") == 1.0
    with pytest.raises(InstrumentError, match="closed"):
        inst.acquire(0, 0, 0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("x", "y", "exposure", "code"),
    [
        (-1, 0, 0.01, "out_of_range"),
        (32, 0, 0.01, "out_of_range"),
        (0, 32, 0.01, "out_of_range"),
        (1.5, 0, 0.01, "bad_request"),
        ("a", 0, 0.01, "bad_request"),
        (0, 0, 0.0, "bad_exposure"),
        (0, 0, float("nan"), "bad_exposure"),
        (0, 0, 99.0, "bad_exposure"),
    ],
)
def test_bad_requests_are_refused(
    eels: NionInstrument, x: Any, y: Any, exposure: float, code: str
) -> None:
    with pytest.raises(InstrumentError) as info:
        eels.acquire(x, y, exposure)
    assert info.value.code == code
    assert _stem().GetVal("C_Blank") == 1.0


@pytest.mark.slow
def test_only_one_simulated_stem_per_process(eels: NionInstrument) -> None:
    with pytest.raises(InstrumentError) as info:
        start_simulated_nion()
    assert info.value.code == "nion_busy"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"modality": "eds"},
        {"shape": (1, 5)},
        {"binning": 0},
        {"deadman_s": 0.0},
        {"exposure_range": (0.1, 1.0), "default_exposure": 2.0},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NionConfig(**kwargs)


@pytest.mark.slow
def test_eels_passes_the_instrument_conformance_check(eels: NionInstrument) -> None:
    check_instrument(eels, exposure_s=0.005)


@pytest.mark.slow
def test_ronchigram_passes_the_instrument_conformance_check(ronchigram: NionInstrument) -> None:
    check_instrument(ronchigram, exposure_s=0.005)


@pytest.mark.slow
def test_deadman_blanks_a_beam_left_on(eels: NionInstrument) -> None:
    stem = _stem()
    blanked = threading.Event()

    def changed(name: str) -> None:
        if name == "is_blanked" and stem.GetVal("C_Blank") == 1.0:
            blanked.set()

    inst = NionInstrument.from_registry(NionConfig(modality="eels", deadman_s=0.2))
    listener = stem.property_changed_event.listen(changed)
    try:
        inst.unblank()
        assert inst.status()["blanked"] is False
        assert blanked.wait(timeout=10.0), "the watchdog never blanked the beam"
        assert stem.GetVal("C_Blank") == 1.0
        assert inst.status()["blanked_by"] == "deadman"
        assert "deadman" in inst.describe()["capabilities"]
    finally:
        del listener  # nion.utils drops a listener once it is unreferenced
        inst.close()


@pytest.mark.slow
def test_deadman_leaves_a_beam_it_did_not_unblank_alone(eels: NionInstrument) -> None:
    """The operator (or another client) unblanked: an idle adapter must not blank it."""
    stem = _stem()
    blanked = threading.Event()

    def changed(name: str) -> None:
        if name == "is_blanked" and stem.GetVal("C_Blank") == 1.0:
            blanked.set()

    inst = NionInstrument.from_registry(NionConfig(modality="eels", deadman_s=0.1))
    listener = stem.property_changed_event.listen(changed)
    try:
        stem.SetVal("C_Blank", 0.0)  # as from Swift's UI
        assert not blanked.wait(timeout=1.0), "the watchdog blanked a beam it did not unblank"
    finally:
        del listener
        stem.SetVal("C_Blank", 1.0)
        inst.close()


# -- calibration maths, no Nion needed -------------------------------------------------


@dataclass
class Cal:
    offset: float = 0.0
    scale: float = 1.0
    units: str = ""


def test_probe_fraction_is_the_pixel_centre_as_y_x() -> None:
    assert calib.probe_fraction(0, 0, (24, 32)) == (0.5 / 24, 0.5 / 32)
    assert calib.probe_fraction(31, 23, (24, 32)) == (23.5 / 24, 31.5 / 32)


def test_spectrum_sums_rows_and_keeps_the_ev_axis() -> None:
    frame = np.arange(12, dtype=np.float32).reshape(3, 4)
    spectrum, energy = calib.spectrum_from_frame(frame, [Cal(), Cal(-20.0, 0.5, "eV")])
    assert spectrum.tolist() == [12.0, 15.0, 18.0, 21.0]
    assert energy.tolist() == [-20.0, -19.5, -19.0, -18.5]
    flipped, increasing = calib.spectrum_from_frame(frame[0], [Cal(10.0, -1.0, "eV")])
    assert increasing.tolist() == [7.0, 8.0, 9.0, 10.0] and flipped.tolist() == [3, 2, 1, 0]
    with pytest.raises(InstrumentError, match="not eV"):
        calib.spectrum_from_frame(frame, [Cal(), Cal(0.0, 1.0, "")])


def test_ronchigram_calibration_from_rad_axes_or_override() -> None:
    cals = [Cal(-0.1, 0.0002, "rad"), Cal(-0.05, 0.0002, "rad")]
    mrad, center = calib.diffraction_calibration((1000, 500), cals)
    assert mrad == pytest.approx(0.2) and center == pytest.approx((500.0, 250.0))
    assert calib.inner_angle_mrad((1000, 500), mrad, center) == pytest.approx(249 * 0.2)
    uncal = [Cal(0.0, 1.0, ""), Cal(0.0, 1.0, "")]
    assert calib.diffraction_calibration((5, 7), uncal, 0.3) == (0.3, (2.0, 3.0))
    with pytest.raises(InstrumentError, match="mrad_per_px"):
        calib.diffraction_calibration((5, 7), uncal)


def test_dose_is_incident_electrons_per_square_angstrom_of_a_pixel() -> None:
    electrons = 1e-12 * 0.1 / calib.ELEMENTARY_CHARGE_C
    assert calib.dose_per_pixel(1e-12, 0.1, 2.0) == pytest.approx(electrons / 400.0)
    assert calib.dose_per_pixel(None, 0.1, 2.0) == 0.0
    assert calib.dose_per_pixel(1e-12, 0.1, None) == 0.0


def test_exposure_window_refuses_a_frame_started_before_the_request() -> None:
    end = datetime.datetime(2026, 1, 1, 12, 0, 1)  # naive UTC, as Nion stamps data
    end_s = end.replace(tzinfo=datetime.timezone.utc).timestamp()
    meta = {"hardware_source": {"exposure": 0.5}}
    start, stop, exposure = calib.exposure_window(meta, end, 0.4, end_s - 0.6)
    assert (start, stop, exposure) == (end_s - 0.5, end_s, 0.5)
    with pytest.raises(InstrumentError) as info:
        calib.exposure_window(meta, end, 0.5, end_s - 0.3)
    assert info.value.code == "nion_stale_frame" and info.value.retryable


@pytest.mark.slow
def test_served_over_the_bus_as_inside_swift(eels: NionInstrument, proxy: Any) -> None:
    """`serve_nion` wraps the registered STEM in the generic server: the agent's view."""
    from dkl.bus import Subscriber
    from dkl.instruments.client import InstrumentClient
    from dkl.instruments.nion_serve import serve_nion

    with Subscriber(proxy.endpoints.backend, ["instrument.status"]) as sub:
        server, scope = serve_nion(
            NionConfig(modality="eels", shape=SHAPE), bus=proxy.endpoints.frontend
        )
        try:
            with InstrumentClient(server.endpoint, timeout_s=10.0) as client:
                check_instrument(client, exposure_s=0.005)
                assert client.describe()["energy"].shape == eels.describe()["energy"].shape
                client.acquire(4, 5, 0.005)
            events: list[str] = []
            while not _unblank_then_blank(events):
                msg = sub.recv(timeout=5.0)
                assert msg is not None, f"no beam events published; saw {events}"
                events.append(msg.body["event"])
        finally:
            server.stop()
            scope.close()
    assert _stem().GetVal("C_Blank") == 1.0


def _unblank_then_blank(events: list[str]) -> bool:
    return "unblank" in events and "blank" in events[events.index("unblank") :]


@pytest.mark.slow
def test_dkl_instrument_nion_sim_serves_a_process(proxy: Any) -> None:
    """`python -m dkl.instruments.nion_serve --sim` = `dkl instrument nion --sim`."""
    pytest.importorskip("nion.usim_device")
    from dkl.instruments.client import InstrumentClient

    args = ["--sim", "--size", "16", "--modality", "4dstem", "--binning", "8"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dkl.instruments.nion_serve",
            *args,
            "--bus",
            proxy.endpoints.frontend,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        ready = lines.get(timeout=60.0)
        assert ready.startswith("READY "), (ready, proc.stderr.read() if not ready else "")
        with InstrumentClient(ready.split()[1], timeout_s=20.0) as client:
            check_instrument(client, exposure_s=0.005)
            assert client.describe()["name"] == "nion:usim"
        proc.send_signal(signal.SIGTERM)  # the server blanks, restores and exits 0
        assert proc.wait(timeout=30.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10.0)
        proc.stdout.close()
        proc.stderr.close()


def test_run_nion_refuses_a_real_stem_from_outside_swift() -> None:
    from dkl.instruments.nion_serve import run_nion

    with pytest.raises(InstrumentError) as info:
        run_nion(sim=False)
    assert info.value.code == "nion_not_here" and "serve_nion" in info.value.message


@pytest.mark.slow
def test_full_size_ronchigram_frames_are_fresh(eels: NionInstrument) -> None:
    """At 1024x1024 usim hands back frames computed before the request: they are dropped."""
    inst = NionInstrument.from_registry(NionConfig(modality="4dstem", shape=SHAPE))
    try:
        inst.survey()
        pause = threading.Event()
        for i, exposure in enumerate([0.001, 0.002, 0.001, 0.002]):
            pause.wait(0.05 * i)  # idle gaps, as between an agent's requests
            m = inst.acquire(3 * i, 2 * i, exposure)
            assert m["data"].shape == (1024, 1024) and m["data"].max() > 0
            assert m["settled_at"] <= m["exposure_start"] < m["exposure_end"]
    finally:
        inst.close()


# -- frame freshness on a scripted camera, no Nion needed -------------------------------


class _Xdata:
    def __init__(self, end: float, exposure_s: float, valid_rows: int = 4) -> None:
        self.timestamp = datetime.datetime.fromtimestamp(end, datetime.timezone.utc)
        self.metadata = {"hardware_source": {"exposure": exposure_s, "valid_rows": valid_rows}}
        self.data_shape = (4, 8)


class _ScriptedCamera:
    """Delivers frames ending `offsets` seconds after each request, like a hardware source."""

    def __init__(self, offsets: list[float], playing: bool = False, partial: int = 0) -> None:
        self.offsets = list(offsets)
        self.partial = partial  # this many frames arrive with 2 of their 4 rows
        self.is_playing = playing
        self.calls: list[str] = []

    def _next(self) -> list[_Xdata]:
        rows = 2 if self.partial > 0 else 4
        self.partial -= 1
        return [_Xdata(time.time() + self.offsets.pop(0), 0.01, rows)]

    def start_playing(self) -> None:
        self.calls.append("start")
        self.is_playing = True

    def stop_playing(self, sync_timeout: float) -> None:
        self.calls.append("stop")
        self.is_playing = False

    def get_next_xdatas_to_finish(self, timeout: float) -> list[_Xdata]:
        self.calls.append("next")
        return self._next()

    def get_next_xdatas_to_start(self, timeout: float) -> list[_Xdata]:
        self.calls.append("next_to_start")
        self._next()  # the kit waits out the frame in progress...
        return self._next()  # ...and returns the one after it

    def grab_next_to_start(self, timeout: float) -> list[_Xdata]:
        self.calls.append("grab_next_to_start")
        self._next()
        return self._next()


def test_the_first_frame_after_a_request_is_never_used() -> None:
    from dkl.instruments.nion_frames import fresh_frame

    camera = _ScriptedCamera([0.5, 0.02])  # the first looks fresh by its stamp: dropped anyway
    frame = fresh_frame(camera, 0.01, timeout_s=5.0)
    assert frame.end < time.time() + 0.3 and frame.dropped == 0  # the second one
    assert camera.calls == ["start", "next_to_start", "stop"] and not camera.is_playing


def test_stale_frames_are_dropped_until_a_fresh_one() -> None:
    from dkl.instruments.nion_frames import fresh_frame

    camera = _ScriptedCamera([-5.0, -0.5, 0.02])  # two finished before the request
    frame = fresh_frame(camera, 0.01, timeout_s=5.0, skip_first=False)
    assert frame.dropped == 2 and frame.end - frame.start == pytest.approx(0.01)
    assert camera.calls == ["start", "next", "next", "next", "stop"]


def test_incomplete_frames_are_dropped() -> None:
    from dkl.instruments.nion_frames import fresh_frame

    camera = _ScriptedCamera([0.01, 0.02, 0.03], partial=2, playing=True)
    frame = fresh_frame(camera, 0.01, timeout_s=5.0)
    assert frame.dropped == 1 and frame.xdata.metadata["hardware_source"]["valid_rows"] == 4


def test_only_stale_frames_is_a_retryable_error() -> None:
    from dkl.instruments.nion_frames import fresh_frame

    camera = _ScriptedCamera([-1.0] * 5)
    with pytest.raises(InstrumentError) as info:
        fresh_frame(camera, 0.01, timeout_s=5.0, max_stale=3)
    assert info.value.code == "nion_stale_frame" and info.value.retryable
    assert camera.calls == ["start", "next_to_start", "next", "next", "next", "stop"]
    assert not camera.is_playing


def test_a_playing_camera_is_read_with_grab_next_to_start_and_left_playing() -> None:
    from dkl.instruments.nion_frames import fresh_frame

    camera = _ScriptedCamera([-0.01, 0.02], playing=True)
    assert fresh_frame(camera, 0.01, timeout_s=5.0).dropped == 0
    assert camera.calls == ["grab_next_to_start"] and camera.is_playing


# -- a .dkl experiment through the agent's loop, in-process -----------------------------

EELS_PLAN = """\
experiment "core loss on Nion's simulated flakes"
instrument nion sim
measure eels
scalarize sum(40 eV .. 150 eV)
maximize
acquire EI
seed random 5
model dkl hidden=[16] steps=20
stop after 20
"""

RONCHIGRAM_PLAN = """\
experiment "centre-of-mass shift on Nion's simulated Ronchigram"
instrument nion sim
measure 4dstem
scalarize com.magnitude
maximize
acquire EI
seed random 5
model dkl hidden=[16] steps=20
stop after 20
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("plan_text", [EELS_PLAN, RONCHIGRAM_PLAN], ids=["eels", "ronchigram"])
def test_a_dkl_experiment_runs_on_the_simulated_stem(
    eels: NionInstrument, tmp_path: Any, plan_text: str
) -> None:
    pytest.importorskip("tensorflow")
    from dkl.agent.journal import open_recorder
    from dkl.agent.loop import Experiment
    from dkl.bus import read_log
    from dkl.dsl import compile_source

    compiled = compile_source(plan_text)
    assert compiled.plan is not None, compiled.diagnostics
    plan = compiled.plan
    binning = 8 if plan.modality == "4dstem" else None
    scope = NionInstrument.from_registry(
        NionConfig(modality=plan.modality, shape=SHAPE, binning=binning)
    )
    stem = _stem()
    log = _BlankLog(stem)
    recorder = open_recorder(tmp_path, None)
    try:
        outcome = Experiment(plan, scope, recorder, tmp_path, seed=1).run()
    finally:
        recorder.close()
        scope.close()
        log.close()
    assert outcome.exit_status == "success", outcome.reason
    events = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.event"]
    failures = [(e["x"], e["y"], e["failure"]) for e in events if e["failure"] is not None]
    assert len(events) == 20 and not failures, failures
    assert all(np.isfinite(e["scalar"]) for e in events)
    # the beam was unblanked once for the survey and once per measurement, nothing else,
    # and blanked again before the next unblank (C_Blank writes are logged, repeats too)
    states = [blanked for _, blanked in log.events]
    assert states.count(False) == 1 + 20
    assert "FF" not in "".join("T" if b else "F" for b in states) and states[-1] is True
    assert stem.GetVal("C_Blank") == 1.0
