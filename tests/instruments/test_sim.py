"""The simulated microscope: protocol, timing, beam, dose, noise, dead-man's switch, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from dkl.instruments.datasets import Dataset, load_builtin
from dkl.instruments.faults import Faults, ReplyDropped
from dkl.instruments.protocols import InstrumentError, Status
from dkl.instruments.sim import Noise, SimMicroscope, Timing
from dkl.instruments.testing import check_instrument


@pytest.fixture(scope="module")
def plasmonic() -> Dataset:
    return load_builtin("plasmonic", seed=0, size=16, noise=False)


@pytest.fixture
def make(plasmonic: Dataset) -> Iterator:
    sims: list[SimMicroscope] = []

    def _make(**kwargs: object) -> SimMicroscope:
        kwargs.setdefault("speed", 0)
        sim = SimMicroscope(plasmonic, **kwargs)  # type: ignore[arg-type]
        sims.append(sim)
        return sim

    yield _make
    for sim in sims:
        sim.close()


@pytest.mark.parametrize("name", ["plasmonic", "core-loss", "4dstem"])
def test_conformance_in_process(name: str) -> None:
    options = {"detector": 16} if name == "4dstem" else {}
    with SimMicroscope(load_builtin(name, size=12, **options), speed=0) as sim:
        check_instrument(sim)


def test_replays_data_scaled_by_exposure(make, plasmonic: Dataset) -> None:
    sim = make()
    t0 = plasmonic.default_exposure
    m = sim.acquire(5, 7, t0)
    np.testing.assert_array_equal(m["data"], plasmonic.spectra[7, 5])
    m2 = sim.acquire(5, 7, 3 * t0)
    np.testing.assert_allclose(m2["data"], 3 * plasmonic.spectra[7, 5], rtol=1e-6)


def test_poisson_noise_is_shot_noise(make, plasmonic: Dataset) -> None:
    sim = make(noise=Noise("poisson"), seed=1)
    frames = np.stack([sim.acquire(2, 2, plasmonic.default_exposure)["data"] for _ in range(200)])
    expected = plasmonic.spectra[2, 2].astype(np.float64)
    strong = expected > 100
    np.testing.assert_allclose(frames.mean(0)[strong], expected[strong], rtol=0.05)
    ratio = frames.var(0, ddof=1)[strong] / expected[strong]
    assert 0.9 < ratio.mean() < 1.1, "variance equals mean: shot noise"
    assert np.all(frames == np.round(frames)), "counts are integers"


def test_timing_model_settles_before_exposing(make) -> None:
    sim = make(speed=1.0, timing=Timing(settle_s=0.02, settle_per_px_s=0.0, readout_s=0.01))
    start = time.time()
    m = sim.acquire(1, 1, 0.03)
    end = time.time()
    assert m["settled_at"] - start >= 0.02 - 1e-3
    assert m["settled_at"] <= m["exposure_start"] <= m["exposure_end"]
    assert m["exposure_end"] - m["exposure_start"] >= 0.03 - 1e-3
    assert end - start >= 0.06 - 2e-3
    fast = make(speed=10.0, timing=Timing(settle_s=0.2, settle_per_px_s=0.0, readout_s=0.1))
    start = time.time()
    fast.acquire(1, 1, 0.3)
    assert time.time() - start < 0.4, "speed=10 must cut the 0.6 s of physical time"


def test_beam_blanked_except_while_exposing_and_dose_map(make) -> None:
    sim = make(dose_rate=1000.0)
    events: list[tuple[str, bool]] = []
    sim.subscribe(lambda event, status: events.append((event, status["blanked"])))
    assert sim.snapshot()["blanked"] is True
    sim.acquire(3, 4, 0.01)
    sim.acquire(3, 4, 0.02)
    sim.acquire(0, 0, 0.01)
    assert events == [("unblank", False), ("blank", True)] * 3
    dose = sim.dose_map()
    assert dose[4, 3] == pytest.approx(30.0) and dose[0, 0] == pytest.approx(10.0)
    assert dose.sum() == pytest.approx(sim.snapshot()["total_dose"])


def test_bad_requests_are_structured_errors(make) -> None:
    sim = make()
    for args, code in [
        ((16, 0, 0.01), "out_of_range"),
        ((0, -1, 0.01), "out_of_range"),
        ((0, 0, 0.0), "bad_exposure"),
        ((0, 0, float("nan")), "bad_exposure"),
        ((1.5, 0, 0.01), "bad_request"),
        (("a", 0, 0.01), "bad_request"),
    ]:
        with pytest.raises(InstrumentError) as info:
            sim.acquire(*args)
        assert info.value.code == code and not info.value.retryable


def test_deadman_blanks_after_silence(make) -> None:
    sim = make(deadman_s=0.15)
    tripped = threading.Event()
    seen: list[Status] = []

    def listener(event: str, status: Status) -> None:
        if event == "deadman":
            seen.append(status)
            tripped.set()

    sim.subscribe(listener)
    sim.unblank()
    silent_from = time.monotonic()
    assert tripped.wait(timeout=5.0), "the dead-man's switch never fired"
    assert time.monotonic() - silent_from >= 0.15 - 0.01
    assert seen[0]["blanked"] is True and seen[0]["blanked_by"] == "deadman"
    snap = sim.snapshot()
    assert snap["deadman_tripped"] is True and snap["blanked"] is True
    sim.heartbeat()
    assert sim.snapshot()["deadman_tripped"] is False
    assert sim.describe()["deadman_s"] == 0.15


def test_deadman_holds_while_agent_calls(make) -> None:
    sim = make(speed=1.0, deadman_s=0.1, timing=Timing(settle_s=0.0, readout_s=0.0))
    fired: list[float] = []
    sim.subscribe(lambda event, status: event == "deadman" and fired.append(time.monotonic()))
    sim.acquire(1, 1, 0.25)  # longer than deadman_s, but the agent is in a call
    returned = time.monotonic()
    assert not [t for t in fired if t < returned], "tripped while a call was in progress"


def test_fault_nan_saturated_stale(make, plasmonic: Dataset) -> None:
    sim = make(
        faults=Faults(
            nan_at=frozenset({(1, 2)}), saturate_at=frozenset({(3, 3)}), stale_at=frozenset({3})
        )
    )
    assert np.isnan(sim.acquire(1, 2, 0.01)["data"]).all()
    sat = sim.acquire(3, 3, 0.01)["data"]
    assert sat.max() == 65535.0 and (sat == 65535.0).sum() > 3
    first = sim.acquire(5, 5, 0.01)["data"]
    stale = sim.acquire(9, 9, 0.01)["data"]  # acquisition index 3
    np.testing.assert_array_equal(stale, first)
    assert [h["fault"] for h in sim.history] == ["nan", "saturated", None, "stale"]


def test_fault_rates_are_seeded(make) -> None:
    def faults_seen(seed: int) -> list:
        sim = make(faults=Faults(nan_rate=0.3), seed=seed)
        for i in range(30):
            sim.acquire(i % 16, 0, 0.01)
        return [h["fault"] for h in sim.history]

    a, b = faults_seen(5), faults_seen(5)
    assert a == b and 3 <= a.count("nan") <= 18


def test_fault_dropped_reply_still_delivers_dose(make) -> None:
    sim = make(faults=Faults(drop_reply_at=frozenset({0})))
    with pytest.raises(ReplyDropped) as info:
        sim.acquire(2, 2, 0.01)
    assert info.value.retryable and sim.snapshot()["acquisitions"] == 1
    assert sim.dose_map()[2, 2] > 0


def test_fault_drift_moves_the_probe(make) -> None:
    sim = make(
        speed=1.0,
        faults=Faults(drift_px_per_s=(40.0, 0.0)),
        timing=Timing(settle_s=0.0, readout_s=0.0),
    )
    sim.acquire(0, 0, 0.1)
    sim.acquire(0, 0, 0.01)
    requested, actual = sim.history[-1]["requested"], sim.history[-1]["actual"]
    assert requested == (0, 0) and actual[0] >= 4 and actual[1] == 0


def test_fault_delay_and_hang(make) -> None:
    sim = make(
        faults=Faults(delay_s=0.05, hang_at=frozenset({1}), hang_s=0.1),
        speed=1.0,
        timing=Timing(settle_s=0.0, readout_s=0.0),
    )
    start = time.monotonic()
    sim.acquire(0, 0, 1e-3)
    assert time.monotonic() - start >= 0.05 - 1e-3
    start = time.monotonic()
    sim.acquire(0, 0, 1e-3)
    assert time.monotonic() - start >= 0.15 - 1e-3


def test_fault_dies_mid_acquisition(make) -> None:
    died = threading.Event()
    sim = make(faults=Faults(die_after=2), on_die=died.set)
    sim.acquire(0, 0, 0.01)
    sim.acquire(1, 0, 0.01)
    with pytest.raises(InstrumentError) as info:
        sim.acquire(2, 0, 0.01)
    assert info.value.code == "instrument_died" and died.is_set()
    with pytest.raises(InstrumentError, match="died"):
        sim.status()


def test_faults_parse() -> None:
    f = Faults.parse("nan_rate=0.1, hang_at=2/5 nan_at=3:4 drift_px_per_s=0.5:0 die_after=7")
    assert f.nan_rate == 0.1 and f.hang_at == frozenset({2, 5})
    assert f.nan_at == frozenset({(3, 4)}) and f.drift_px_per_s == (0.5, 0.0)
    assert f.die_after == 7 and f.any and not Faults().any
    with pytest.raises(ValueError, match="known keys"):
        Faults.parse("nan=1")
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        Faults.parse("nan_rate=2")


def test_close_interrupts_a_long_exposure(make) -> None:
    sim = make(speed=1.0)
    errors: list[BaseException] = []
    exposing = threading.Event()
    sim.subscribe(lambda event, status: event == "unblank" and exposing.set())

    def run() -> None:
        try:
            sim.acquire(0, 0, 5.0)
        except InstrumentError as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert exposing.wait(timeout=5.0)
    sim.close()
    thread.join(timeout=2.0)
    assert not thread.is_alive() and errors and errors[0].code == "closed"


def test_dose_accrues_while_unblanked_by_hand(make) -> None:
    sim = make(dose_rate=100.0)
    sim.acquire(4, 5, 0.01)  # the probe parks at (4, 5)
    before = sim.dose_map()[5, 4]
    opened = time.monotonic()
    sim.unblank()
    sim.blank()
    closed = time.monotonic()
    added = sim.dose_map()[5, 4] - before
    assert 0 < added <= 100.0 * (closed - opened) + 1e-9
    sim.unblank()
    sim.acquire(0, 0, 0.01)  # acquire blanks before moving: nothing smeared on the way
    assert sim.snapshot()["blanked"] is True
    assert sim.dose_map()[0, 0] == pytest.approx(1.0)


def test_deadman_arms_on_the_first_call(make) -> None:
    sim = make(deadman_s=0.05)
    fired = threading.Event()
    sim.subscribe(lambda event, status: event == "deadman" and fired.set())
    assert not fired.wait(0.3), "tripped before any agent called"
    sim.heartbeat()
    assert fired.wait(5.0)
