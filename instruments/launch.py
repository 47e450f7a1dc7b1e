"""`dkl instrument sim`: build the simulated microscope from a dataset and serve it.

One entry point, `run_sim(config)`, so tests (or `dkl run`) can start the same server
in-process, or as a subprocess that prints `READY tcp://127.0.0.1:PORT` once bound:
`python -m dkl.instruments DATASET [options]` is `dkl instrument sim` without the
rest of the command line. The options are defined once, in `simargs.py`.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkl.instruments.datasets import Dataset, load_builtin
from dkl.instruments.faults import Faults
from dkl.instruments.loaders import load_dataset
from dkl.instruments.server import run_instrument_server
from dkl.instruments.sim import Noise, SimMicroscope
from dkl.instruments.simargs import CALIBRATIONS, add_sim_arguments


@dataclass(frozen=True)
class SimConfig:
    """Everything `dkl instrument sim` accepts.

    Attributes:
        dataset: `builtin:NAME` or a dataset file (.npz, .h5, .dm3/.dm4, .hspy, .emd).
        survey: optional survey image file over the same field of view.
        size: grid size of built-in datasets; seed: their seed and the noise seed;
            detector: detector pixels of builtin:4dstem (default 64).
        speed, noise, read_noise, deadman_s, dose_rate, faults: see `SimMicroscope`.
        bind: RPC endpoint (`:0` = free port); bus: the proxy's publisher endpoint.
        overrides: calibrations for files that lack them (see `load_dataset`).
    """

    dataset: str
    survey: str | None = None
    size: int = 64
    detector: int | None = None
    seed: int = 0
    speed: float = 1.0
    noise: str = "none"
    read_noise: float = 0.0
    deadman_s: float | None = None
    dose_rate: float = 1.0e4
    faults: Faults = field(default_factory=Faults)
    bind: str = "tcp://127.0.0.1:0"
    bus: str | None = None
    heartbeat_interval_s: float = 1.0
    overrides: dict[str, Any] = field(default_factory=dict)


def open_dataset(
    spec: str,
    survey: str | None = None,
    size: int = 64,
    seed: int = 0,
    detector: int | None = None,
    **overrides: Any,
) -> Dataset:
    """`builtin:NAME` (generated; `detector` pixels for builtin:4dstem) or a path (loaded)."""
    if spec.startswith("builtin:"):
        if survey is not None or overrides:
            raise ValueError("a built-in dataset takes no survey file or calibration overrides")
        if detector is not None and spec != "builtin:4dstem":
            raise ValueError("--detector applies to builtin:4dstem only")
        options = {} if detector is None else {"detector": detector}
        return load_builtin(spec, seed=seed, size=size, **options)
    if detector is not None:
        raise ValueError("--detector applies to builtin:4dstem only")
    if not Path(spec).exists():
        raise ValueError(f"{spec}: no such file (built-in datasets are named builtin:NAME)")
    return load_dataset(spec, survey=survey, **overrides)


def build_sim(config: SimConfig, on_die: Callable[[], None] | None = None) -> SimMicroscope:
    """The simulated microscope `config` describes."""
    dataset = open_dataset(
        config.dataset,
        config.survey,
        config.size,
        config.seed,
        config.detector,
        **config.overrides,
    )
    return SimMicroscope(
        dataset,
        speed=config.speed,
        noise=Noise(config.noise, config.read_noise),
        faults=config.faults,
        deadman_s=config.deadman_s,
        dose_rate=config.dose_rate,
        seed=config.seed,
        on_die=on_die,
    )


def run_sim(
    config: SimConfig,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve the simulated microscope until interrupted; prints `READY <endpoint>` once bound."""
    return run_instrument_server(
        lambda on_die: build_sim(config, on_die),
        config.bind,
        config.bus,
        announce=announce,
        stop=stop,
        heartbeat_interval_s=config.heartbeat_interval_s,
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The `SimConfig` parsed options describe (ValueError on a bad fault spec)."""
    names = (*CALIBRATIONS, "depth")
    return SimConfig(
        dataset=args.dataset,
        survey=args.survey,
        size=args.size,
        detector=args.detector,
        seed=args.seed,
        speed=args.speed,
        noise=args.noise,
        read_noise=args.read_noise,
        deadman_s=args.deadman,
        dose_rate=args.dose_rate,
        faults=Faults.parse(args.faults),
        bind=args.bind,
        bus=args.bus,
        heartbeat_interval_s=args.heartbeat,
        overrides={k: getattr(args, k) for k in names if getattr(args, k) is not None},
    )


def run_from_args(args: argparse.Namespace, prog: str = "dkl instrument sim") -> int:
    """Serve what the options say; exit status 2 with a one-line error on bad input."""
    import zmq

    try:
        return run_sim(config_from_args(args))
    except (ValueError, OSError, RuntimeError, zmq.ZMQError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """`python -m dkl.instruments DATASET [options]` (= `dkl instrument sim`)."""
    parser = argparse.ArgumentParser(prog="python -m dkl.instruments")
    add_sim_arguments(parser)
    return run_from_args(parser.parse_args(argv), parser.prog)
