"""One camera frame whose exposure began after the probe moved, from a Nion camera.

Why this needs care: a Nion camera hardware source can hand back a frame that was
exposed before it was asked. We saw it with Nion's simulated cameras: after
`stop_playing()` the simulator may already be computing the next frame (at the old probe
position, or blanked), and `start_playing()` + `get_next_xdatas_to_finish()` returns that
frame, sometimes stamped seconds before the request, sometimes stamped after it (usim
stamps the end of its exposure wait, and computes the picture before that wait).

So, by default, the first frame after the request is always dropped and the next one
used, which is what the kit's `grab_next_to_start()` does for a camera that is already
playing: that frame's exposure began after the first one ended, hence after the request.
On top of that, every frame is checked against its own end timestamp and exposure
(`nion_calib.exposure_window`); a stale one is dropped and the next one taken, up to
`max_stale` times. `skip_first=False` saves one frame per acquisition for cameras known
to start every frame fresh (a triggered camera), with the timestamp check still in force.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from dkl.instruments import nion_calib as calib
from dkl.instruments.protocols import InstrumentError

#: Stale (or incomplete) frames dropped in a row before giving up.
MAX_STALE_FRAMES = 3


@dataclass(frozen=True)
class Frame:
    """A fresh frame (`xdata`, Nion's DataAndMetadata) and when it was exposed."""

    xdata: Any
    start: float
    end: float
    exposure_s: float
    dropped: int  # stale frames discarded before this one


def configure_camera(camera: Any, exposure_s: float, binning: int | None) -> None:
    """Set the camera's exposure (and binning, when given) only if they differ."""
    params = camera.get_current_frame_parameters()
    binning = binning or params.binning
    if abs(params.exposure_ms - exposure_s * 1e3) > 1e-9 or params.binning != binning:
        params = copy.deepcopy(params)
        params.exposure_ms = exposure_s * 1e3
        params.binning = binning
        camera.set_current_frame_parameters(params)


def fresh_frame(
    camera: Any,
    exposure_s: float,
    timeout_s: float,
    max_stale: int = MAX_STALE_FRAMES,
    skip_first: bool = True,
) -> Frame:
    """The first frame whose exposure began after this call.

    Raises:
        InstrumentError: "nion_camera" (retryable) when the camera fails or times out,
            "nion_stale_frame" / "nion_partial_frame" (retryable) after `max_stale` stale
            or incomplete frames in a row.
    """
    asked_at = time.time()
    deadline = time.monotonic() + timeout_s
    was_playing = camera.is_playing
    try:
        if was_playing:  # someone is viewing: wait out the running frame
            xdatas = camera.grab_next_to_start(timeout=timeout_s)
        else:
            camera.start_playing()
            if skip_first:  # drop whatever comes first, take the frame after it
                xdatas = camera.get_next_xdatas_to_start(timeout_s)
            else:
                xdatas = camera.get_next_xdatas_to_finish(timeout_s)
        for dropped in range(max_stale + 1):
            xdata = _first(xdatas)
            try:
                start, end, actual_s = calib.exposure_window(
                    dict(xdata.metadata), xdata.timestamp, exposure_s, asked_at
                )
                _check_complete(xdata)
                return Frame(xdata, start, end, actual_s, dropped)
            except InstrumentError as err:
                if err.code not in ("nion_stale_frame", "nion_partial_frame"):
                    raise
                if dropped == max_stale:
                    raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise InstrumentError("nion_camera", "no fresh frame before the timeout", True)
            xdatas = camera.get_next_xdatas_to_finish(left)
    except InstrumentError:
        raise
    except Exception as err:  # the kit raises bare Exceptions on timeouts
        raise InstrumentError("nion_camera", f"camera frame failed: {err}", True) from err
    finally:
        if not was_playing and camera.is_playing:
            camera.stop_playing(sync_timeout=timeout_s)
    raise AssertionError("unreachable")  # the loop returns or raises


def _check_complete(xdata: Any) -> None:
    """A frame the kit delivered before all its rows were read is not a measurement."""
    valid = xdata.metadata.get("hardware_source", {}).get("valid_rows")
    rows = xdata.data_shape[0] if getattr(xdata, "data_shape", None) else None
    if valid is not None and rows is not None and int(valid) < rows:
        raise InstrumentError("nion_partial_frame", f"frame has {valid} of {rows} rows", True)


def _first(xdatas: Any) -> Any:
    if not xdatas or xdatas[0] is None:
        raise InstrumentError("nion_camera", "camera returned no frame", True)
    return xdatas[0]
