"""Nion's simulated STEM (`nionswift-usim`), headless, behind our `NionInstrument`.

This is what Nion Swift does at start-up when the usim plug-in loads, minus the
application and its UI: start the kit's hardware-source manager and the camera/scan
registration listeners, build usim's STEM controller, scan device, Ronchigram and EELS
cameras, and register them. `close()` on the returned instrument undoes all of it.
The kit keeps process-wide registries, so only one simulated STEM may run per process.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import tempfile
import threading
import warnings
from collections.abc import Callable

from dkl.instruments.nion import NionConfig, NionInstrument, require_nion
from dkl.instruments.protocols import InstrumentError

#: usim's samples, by name (`InstrumentDevice.ScanDataGenerator`).
SAMPLES = {"flake": 0, "amorphous": 1, "combined": 2}

_running = threading.Lock()


def start_simulated_nion(
    config: NionConfig | None = None, *, sample: str = "flake"
) -> NionInstrument:
    """Start usim headless and return a `NionInstrument` on it; close it to shut usim down.

    Args:
        config: adapter settings (modality, grid shape, ...); defaults to EELS on 64x64.
        sample: usim sample, one of `SAMPLES`.

    Raises:
        InstrumentError: "nion_missing" without the extra, "nion_busy" when a simulated
            STEM is already running in this process.

    Example:
        >>> with start_simulated_nion(NionConfig(modality="4dstem")) as inst:
        ...     frame = inst.acquire(3, 4, 0.01)["data"]
    """
    require_nion()
    if sample not in SAMPLES:
        raise InstrumentError("bad_sample", f"sample must be one of {sorted(SAMPLES)}")
    if not _running.acquire(blocking=False):
        raise InstrumentError("nion_busy", "a simulated Nion STEM is already running here")
    try:
        teardown = _start_usim(SAMPLES[sample])
    except BaseException:
        _running.release()
        raise

    def close() -> None:
        try:
            teardown()
        finally:
            _running.release()

    try:
        return NionInstrument.from_registry(config, name="nion:usim", on_close=close)
    except BaseException:
        close()
        raise


def _start_usim(sample_index: int) -> Callable[[], None]:
    """Register usim's devices with the kit; return the function that unregisters them."""
    from nion.instrumentation import HardwareSource, camera_base, scan_base
    from nion.usim_device import DeviceConfiguration

    settings_dir = tempfile.TemporaryDirectory(prefix="dkl-nion-")
    location = pathlib.Path(settings_dir.name)  # camera/scan settings files land here
    own_loop = _ensure_event_loop()  # Nion's kit reads the thread's event loop
    HardwareSource.run()
    camera_base.run(location)
    scan_base.run(location)
    usim = DeviceConfiguration.AcquisitionContextConfiguration(
        sample_index=sample_index, set_configuration_location=False
    )
    previous = logging.root.manager.disable
    try:
        usim.run()
    finally:
        logging.disable(previous)

    def teardown() -> None:
        try:
            _teardown()
        finally:
            if own_loop is not None:
                asyncio.set_event_loop(None)
                own_loop.close()

    def _teardown() -> None:
        try:
            for source in list(HardwareSource.HardwareSourceManager().hardware_sources):
                if source.is_playing:
                    source.abort_playing(sync_timeout=5.0)
            usim.stop()
        finally:
            scan_base.stop()
            camera_base.stop()
            HardwareSource.stop()
            HardwareSource.HardwareSourceManager().close()
            settings_dir.cleanup()

    return teardown


def _ensure_event_loop() -> asyncio.AbstractEventLoop | None:
    """Give this thread an event loop if it has none; returns the loop made here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            asyncio.get_event_loop_policy().get_event_loop()
            return None
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            return loop
