"""Conformance test for anything claiming to be an `Instrument` (for tests only).

`check_instrument(instrument)` is the contract written as one function, in the manner of
trio's `check_two_way_stream`: the simulated microscope, the bus client and any adapter
for a real microscope must all pass it. It moves the probe, so run it on simulators or on
a real instrument with a sacrificial sample area.
"""

from __future__ import annotations

import math

import numpy as np

from dkl.instruments.protocols import Instrument, InstrumentError


def check_instrument(instrument: Instrument, exposure_s: float | None = None) -> None:
    """Assert that `instrument` keeps the protocol's promises (raises AssertionError)."""
    assert isinstance(instrument, Instrument), "does not implement the Instrument protocol"
    desc = instrument.describe()
    for key in ("name", "modality", "shape", "signal_range", "exposure_range", "default_exposure"):
        assert key in desc, f"describe() lacks {key!r}"
    h, w = (int(v) for v in desc["shape"])
    low, high = desc["exposure_range"]
    exposure = float(exposure_s if exposure_s is not None else desc["default_exposure"])
    assert low <= exposure <= high

    survey = instrument.survey()
    image = np.asarray(survey["image"])
    assert image.shape == (h, w), f"survey {image.shape} is not on the grid {(h, w)}"
    assert image.dtype == np.float32 and np.isfinite(image).all()

    if desc["modality"] == "4dstem":
        expected_shape = tuple(int(v) for v in desc["detector_shape"])
        assert desc["mrad_per_px"] > 0 and len(desc["center"]) == 2
    else:
        energy = np.asarray(desc["energy"])
        expected_shape = (energy.size,)
        assert np.all(np.diff(energy) > 0), "energy axis must increase"

    before = instrument.status()
    assert before["blanked"] is True, "the beam must be blanked while nobody measures"
    total = float(before.get("total_dose", 0.0))
    for x, y in ((0, 0), (w - 1, h - 1), (w // 2, h // 3)):
        m = instrument.acquire(x, y, exposure)
        assert (m["x"], m["y"]) == (x, y)
        data = np.asarray(m["data"])
        assert data.shape == expected_shape, f"data {data.shape}, expected {expected_shape}"
        assert data.dtype == np.float32
        assert m["settled_at"] <= m["exposure_start"] <= m["exposure_end"], "exposed before settled"
        assert math.isclose(m["exposure_s"], exposure)
        assert m["dose"] >= 0
        total += m["dose"]
        status = instrument.status()
        assert status["blanked"] is True, "acquire must leave the beam blanked"
        assert status["acquiring"] is False
    after = instrument.status()
    assert after["acquisitions"] == before.get("acquisitions", 0) + 3
    assert math.isclose(after["total_dose"], total, rel_tol=1e-9, abs_tol=1e-9)

    instrument.unblank()
    assert instrument.status()["blanked"] is False
    instrument.blank()
    assert instrument.status()["blanked"] is True
    assert isinstance(instrument.heartbeat(), dict)

    for bad, code in (((w, 0, exposure), "out_of_range"), ((0, 0, -1.0), "bad_exposure")):
        try:
            instrument.acquire(*bad)
        except InstrumentError as err:
            assert err.code == code, f"acquire{bad} raised {err.code}, expected {code}"
            assert err.retryable is False
        else:
            raise AssertionError(f"acquire{bad} did not raise InstrumentError")
    assert instrument.status()["blanked"] is True
