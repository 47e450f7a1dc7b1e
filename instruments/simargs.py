"""The options of `dkl instrument sim`, defined once and cheap to import.

`dkl` builds every sub-command's parser at start-up, so this module imports nothing but
argparse; `launch.py` turns the parsed options into a running server.
"""

from __future__ import annotations

import argparse

_EPILOG = """\
examples:
  dkl instrument sim builtin:plasmonic --speed 10 --noise poisson
  dkl instrument sim builtin:4dstem --bind tcp://127.0.0.1:0 --bus tcp://127.0.0.1:5555
  dkl instrument sim SI-EELS_Spectrum_Image.dm3 --survey SI-HAADF.dm3 --deadman 10
  dkl instrument sim data.npz --faults "nan_rate=0.05,die_after=100"

Once bound it prints one line `READY <endpoint>` on stdout (then serves until
interrupted). Built-in datasets: builtin:plasmonic, builtin:core-loss, builtin:4dstem.
Faults (for tests): delay_s, hang_at, hang_s, drop_reply_at, drop_rate, nan_at, nan_rate,
saturate_at, saturate_rate, stale_at, stale_rate, drift_px_per_s, die_after.
"""
_DESCRIPTION = (
    "Replay a dataset (a file or builtin:NAME) as a microscope with settle, exposure and "
    "readout times, shot noise, beam blanking, a dose map and a dead-man's switch, served "
    "over bus RPC; status and heartbeats are published on the bus."
)
CALIBRATIONS = ("pixel_size_nm", "dispersion", "energy_offset", "mrad_per_px", "beam_energy_kev")


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dkl instrument sim`."""
    parser.description = _DESCRIPTION
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("dataset", metavar="DATASET", help="dataset file or builtin:NAME")
    add("--survey", metavar="FILE", help="survey image over the same field of view")
    add(
        "--speed",
        type=float,
        default=1.0,
        help="times faster than real time; 0 or inf: no waiting (default 1)",
    )
    add(
        "--noise",
        choices=["none", "poisson"],
        default="none",
        help="counting noise (default none: replay, scaled by exposure)",
    )
    add(
        "--read-noise",
        type=float,
        default=0.0,
        metavar="COUNTS",
        help="Gaussian read-out noise sigma (default 0)",
    )
    add(
        "--bind",
        default="tcp://127.0.0.1:0",
        help="RPC endpoint; port 0 picks a free one (default %(default)s)",
    )
    add("--bus", metavar="ADDR", help="bus proxy publisher endpoint for status and heartbeats")
    add(
        "--deadman",
        type=float,
        metavar="S",
        help="blank the beam after S seconds without a call from the agent",
    )
    add("--size", type=int, default=64, help="built-in grid size (default 64)")
    add("--detector", type=int, metavar="PX", help="builtin:4dstem detector pixels (default 64)")
    add("--seed", type=int, default=0, help="built-in and noise seed (default 0)")
    add("--dose-rate", type=float, default=1.0e4, help="e/A2 per second (default 1e4)")
    add(
        "--heartbeat",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between published heartbeats (default 1)",
    )
    add("--faults", default="", metavar="SPEC", help="faults to inject: key=value,...")
    for name in CALIBRATIONS:
        add(f"--{name.replace('_', '-')}", type=float, help="calibration override for files")
    add("--depth", type=int, help="slice of a 5-D 4D-STEM depth series")
