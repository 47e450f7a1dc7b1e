"""`dkl instrument sim|nion`: serve a microscope (simulated, or Nion's) on the bus."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dkl.instruments.nion_serve import add_nion_arguments
    from dkl.instruments.simargs import add_sim_arguments

    p = sub.add_parser(
        "instrument",
        help="run an instrument server (the simulated microscope, or a Nion STEM)",
        description="Instrument servers: each prints `READY <endpoint>` once bound.",
    )
    inner = p.add_subparsers(dest="instrument_command", metavar="KIND", required=True)
    sim = inner.add_parser("sim", help="serve the simulated microscope replaying a dataset")
    add_sim_arguments(sim)
    sim.set_defaults(func=run_sim)
    nion = inner.add_parser("nion", help="serve a Nion STEM (or Nion's simulator with --sim)")
    add_nion_arguments(nion)
    nion.set_defaults(func=run_nion)


def run_sim(args: argparse.Namespace) -> int:
    from dkl.instruments.launch import run_from_args

    return run_from_args(args)


def run_nion(args: argparse.Namespace) -> int:
    from dkl.instruments.nion_serve import run_from_args

    return run_from_args(args)
