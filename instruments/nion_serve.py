"""Put a Nion STEM on the bus: the generic instrument server around `NionInstrument`.

Two ways in. Inside a running Nion Swift (its Python console, or a plug-in), where the
microscope's objects live, `serve_nion(config)` serves the real instrument from
background threads and returns at once. From a shell, `run_nion(config, sim=True)` is
what `dkl instrument nion --sim` runs: Nion's simulated STEM, headless, served until
interrupted, printing `READY <endpoint>` once bound. A real STEM cannot be reached from
a separate process (Swift owns it), so `run_nion(sim=False)` explains that and fails.

`add_nion_arguments` / `run_from_args` are the command line, shared by
`dkl instrument nion` and `python -m dkl.instruments.nion_serve`.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any

from dkl.instruments.nion import NionConfig, NionInstrument
from dkl.instruments.nion_sim import SAMPLES, start_simulated_nion
from dkl.instruments.protocols import InstrumentError

REAL_STEM_HINT = (
    "a real Nion STEM is driven from inside Nion Swift: run "
    "`from dkl.instruments.nion_serve import serve_nion; server, scope = serve_nion()` "
    "in Swift's Python console (see docs/nion.md); use --sim for the simulated STEM"
)


def serve_nion(
    config: NionConfig | None = None,
    bind: str = "tcp://127.0.0.1:0",
    bus: str | None = None,
    **options: Any,
) -> tuple[Any, NionInstrument]:
    """Serve the STEM registered in this process (Nion Swift's) on the bus; returns at once.

    Args:
        config: adapter settings (modality, grid shape, camera ids, ...).
        bind: RPC endpoint; `:0` picks a free port (see `server.endpoint`).
        bus: the bus proxy's publisher endpoint for status and heartbeats, or None.
        options: passed to `serve_instrument` (heartbeat_interval_s, security, ...).

    Returns:
        (server, instrument): stop with `server.stop(); instrument.close()`, which blanks
        the beam and restores the camera and scan settings.

    Example:
        >>> server, scope = serve_nion(NionConfig(modality="eels", shape=(64, 64)))
        >>> print(server.endpoint)   # give this to the agent
        >>> server.stop(); scope.close()
    """
    from dkl.instruments.server import serve_instrument

    instrument = NionInstrument.from_registry(config)
    try:
        return serve_instrument(instrument, bind, bus, **options), instrument
    except BaseException:
        instrument.close()
        raise


def run_nion(
    config: NionConfig | None = None,
    *,
    sim: bool = True,
    sample: str = "flake",
    bind: str = "tcp://127.0.0.1:0",
    bus: str | None = None,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    heartbeat_interval_s: float = 1.0,
) -> int:
    """Serve Nion's simulated STEM until SIGINT/SIGTERM or `stop` (`dkl instrument nion --sim`).

    Raises:
        InstrumentError: "nion_not_here" without `sim` (see `REAL_STEM_HINT`),
            "nion_missing" without the extra.
    """
    if not sim:
        raise InstrumentError("nion_not_here", REAL_STEM_HINT)
    from dkl.instruments.server import run_instrument_server

    return run_instrument_server(
        lambda _on_die: start_simulated_nion(config, sample=sample),
        bind,
        bus,
        announce=announce,
        stop=stop,
        heartbeat_interval_s=heartbeat_interval_s,
    )


def add_nion_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `dkl instrument nion` (and `python -m dkl.instruments.nion_serve`)."""
    parser.description = (
        "Serve a Nion STEM over bus RPC through the Nion Swift instrumentation kit "
        "(needs `pip install '.[nion]'`). With --sim: Nion's simulated STEM (nionswift-usim), "
        "headless. A real STEM is served from inside Nion Swift instead (docs/nion.md). "
        "Prints `READY <endpoint>` once bound."
    )
    parser.add_argument("--sim", action="store_true", help="Nion's simulated STEM (usim)")
    parser.add_argument(
        "--modality",
        choices=["eels", "4dstem"],
        default="eels",
        help="EELS camera spectra or Ronchigram frames (default eels)",
    )
    parser.add_argument("--size", type=int, default=64, help="grid = survey scan size (64)")
    parser.add_argument("--fov-nm", type=float, help="survey field of view (default: keep)")
    parser.add_argument("--binning", type=int, help="camera binning (default: keep)")
    parser.add_argument(
        "--sample", choices=sorted(SAMPLES), default="flake", help="usim sample (default flake)"
    )
    parser.add_argument(
        "--deadman",
        type=float,
        default=5.0,
        metavar="S",
        help="blank a beam left unblanked after S s of silence (default 5)",
    )
    parser.add_argument(
        "--bind",
        default="tcp://127.0.0.1:0",
        help="RPC endpoint; port 0 picks a free one (default %(default)s)",
    )
    parser.add_argument("--bus", metavar="ADDR", help="bus proxy publisher endpoint for status")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between published heartbeats (default 1)",
    )


def run_from_args(args: argparse.Namespace, prog: str = "dkl instrument nion") -> int:
    """Serve what the options say; exit status 2 with a one-line error on bad input."""
    try:
        config = NionConfig(
            modality=args.modality,
            shape=(args.size, args.size),
            fov_nm=args.fov_nm,
            binning=args.binning,
            deadman_s=args.deadman,
        )
        return run_nion(
            config,
            sim=args.sim,
            sample=args.sample,
            bind=args.bind,
            bus=args.bus,
            heartbeat_interval_s=args.heartbeat,
        )
    except (ValueError, OSError, RuntimeError, InstrumentError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """`python -m dkl.instruments.nion_serve --sim [options]` (= `dkl instrument nion`)."""
    parser = argparse.ArgumentParser(prog="python -m dkl.instruments.nion_serve")
    add_nion_arguments(parser)
    return run_from_args(parser.parse_args(argv), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
