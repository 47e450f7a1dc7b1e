"""Acquisition round trip through the Nion adapter, on Nion's simulated STEM, in-process.

For each modality and exposure, times `NionInstrument.acquire` (blank check, probe move,
unblank with read-back, one fresh frame, blank, calibration) next to the bare kit call it
wraps (move the probe, start the camera, take the next frame, stop it; no blanker, no
checks, no calibration), in the same run, and prints medians, 90th percentiles and the
ratio adapter / bare kit.

Run: `python benchmarks/nion.py [--repeats 20]` in an environment with `pip install '.[nion]'`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dkl.instruments.nion import NionConfig, NionInstrument
from dkl.instruments.nion_sim import start_simulated_nion

# `python benchmarks/nion.py` puts benchmarks/ first on sys.path, where this file would
# shadow Nion's `nion` package (imported lazily by the adapter): take it off.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]


def _times(fn: Callable[[int], object], repeats: int) -> list[float]:
    fn(0)  # warm-up: first frame after a settings change
    out = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def _adapter(scope: NionInstrument, exposure_s: float, n: int) -> Callable[[int], object]:
    def acquire(i: int) -> object:
        return scope.acquire((7 * i) % n, (3 * i) % n, exposure_s)

    return acquire


def _bare_kit(
    inst: NionInstrument, exposure_s: float, n: int, blanker: bool = False
) -> Callable[[int], object]:
    from nion.utils import Geometry, Registry

    kind = "eels" if inst.config.modality == "eels" else "ronchigram"
    camera = Registry.get_component(f"{kind}_camera_hardware_source")
    stem = Registry.get_component("stem_controller")

    def grab(i: int) -> object:
        x, y = (7 * i) % n, (3 * i) % n  # the same moves as the adapter's
        stem.probe_position = Geometry.FloatPoint(y=(y + 0.5) / n, x=(x + 0.5) / n)
        params = camera.get_current_frame_parameters()
        params.exposure_ms = exposure_s * 1e3
        camera.set_current_frame_parameters(params)
        if blanker:  # usim recomputes a frame when the blanker changes, as it must
            stem.SetVal("C_Blank", 0.0)
        camera.start_playing()
        try:
            return camera.get_next_xdatas_to_finish(exposure_s + 10.0)
        finally:
            camera.stop_playing(sync_timeout=exposure_s + 10.0)
            if blanker:
                stem.SetVal("C_Blank", 1.0)

    return grab


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--exposures", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--size", type=int, default=64, help="grid size")
    parser.add_argument("--binning", type=int, default=8, help="Ronchigram binning")
    args = parser.parse_args(argv)

    rows = []
    inst = start_simulated_nion(NionConfig(modality="eels", shape=(args.size, args.size)))
    try:
        t0 = time.perf_counter()
        inst.survey()
        survey_s = time.perf_counter() - t0
        ronchigram = NionInstrument.from_registry(
            NionConfig(modality="4dstem", shape=(args.size, args.size), binning=args.binning)
        )
        ronchigram.survey()
        try:
            for scope in (inst, ronchigram):
                shape = "x".join(str(n) for n in scope.describe().get("detector_shape", ()))
                label = "EELS" if scope is inst else f"Ronchigram {shape}"
                for exposure in args.exposures:
                    adapter = _adapter(scope, exposure, args.size)
                    dropped = scope.stale_frames_dropped
                    a = _times(adapter, args.repeats)
                    b = _times(_bare_kit(scope, exposure, args.size), args.repeats)
                    c = _times(_bare_kit(scope, exposure, args.size, True), args.repeats)
                    rows.append((label, exposure, a, b, c, scope.stale_frames_dropped - dropped))
        finally:
            ronchigram.close()
    finally:
        inst.close()

    print(
        f"Nion usim, in-process, {args.repeats} repeats; survey {args.size}x{args.size}: "
        f"{survey_s * 1e3:.1f} ms"
    )
    print("adapter: acquire(); kit: move + start + next frame + stop; kit+blank: the same")
    print("with C_Blank off/on around it. Ratios are adapter / kit and adapter / kit+blank.")
    header = (
        f"{'detector':<19} {'exp ms':>6} {'adapter ms':>10} {'p90':>6} {'kit ms':>7} "
        f"{'kit+blank ms':>12} {'/kit':>5} {'/kit+blank':>10} {'stale dropped':>13}"
    )
    print(header)
    print("-" * len(header))
    for label, exposure, a, b, c, dropped in rows:
        ma, mb, mc = (statistics.median(v) for v in (a, b, c))
        print(
            f"{label:<19} {exposure * 1e3:>6.1f} {ma * 1e3:>10.1f} {_p90(a) * 1e3:>6.1f} "
            f"{mb * 1e3:>7.1f} {mc * 1e3:>12.1f} {ma / mb:>5.2f} {ma / mc:>10.2f} {dropped:>13d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
