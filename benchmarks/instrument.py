"""Benchmark: `acquire` round trips per second at zero simulated exposure time.

For an EELS spectrum (built-in `plasmonic`, 128 channels; `core-loss`, 551 channels) and
a 256 x 256 diffraction pattern (built-in `4dstem`), it times the simulated microscope
called in-process and through the bus client talking to a `dkl instrument sim` server in
another process, side by side in the same run. `speed=0`, so only the software path is measured.

    /work/venv/bin/python benchmarks/instrument.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dkl.instruments import InstrumentClient, SimMicroscope, load_builtin


def _rate(instrument, seconds: float, width: int) -> tuple[float, int]:
    """Acquisitions per second over about `seconds`, cycling through grid positions."""
    exposure = instrument.describe()["default_exposure"]
    instrument.acquire(0, 0, exposure)  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        m = instrument.acquire(count % width, (count // width) % width, exposure)
        count += 1
    return count / elapsed, int(np.asarray(m["data"]).nbytes)


def _serve(dataset: str, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start `dkl instrument sim` (as `python -m dkl.instruments`); its stderr goes to `log`."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dkl.instruments", dataset, "--speed", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.split()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            (
                "EELS 128 ch (plasmonic)",
                "builtin:plasmonic",
                ["--size", "16"],
                load_builtin("plasmonic", size=16),
            ),
            (
                "EELS 551 ch (core-loss)",
                "builtin:core-loss",
                ["--size", "16"],
                load_builtin("core-loss", size=16),
            ),
            (
                "4D-STEM 256x256 pattern",
                "builtin:4dstem",
                ["--size", "8", "--detector", "256"],
                load_builtin("4dstem", size=8, detector=256),
            ),
        ]
        rows = []
        for label, spec, extra, dataset in cases:
            with SimMicroscope(dataset, speed=0) as sim:
                local, nbytes = _rate(sim, args.seconds, dataset.shape[1])
            log = Path(tmp) / "server.log"
            proc, endpoint = _serve(spec, log, *extra)
            try:
                with InstrumentClient(endpoint, timeout_s=10) as client:
                    remote, _ = _rate(client, args.seconds, dataset.shape[1])
            except Exception:
                print(f"{label}: server exit {proc.poll()}, stderr:\n{log.read_text()}")
                raise
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            rows.append((label, nbytes, local, remote))
    print(f"acquire round trips per second, zero simulated time, {args.seconds:g} s each")
    header = ("case", "bytes", "in-process/s", "bus client/s", "ratio", "bus MB/s")
    print("{:<26}{:>9}{:>15}{:>15}{:>8}{:>10}".format(*header))
    for label, nbytes, local, remote in rows:
        print(
            f"{label:<26}{nbytes:>9}{local:>15.0f}{remote:>15.0f}{local / remote:>8.1f}"
            f"{remote * nbytes / 1e6:>10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
