"""Microscopes behind one protocol: the simulated one, its datasets, the bus server and client.

The agent only ever talks to an `Instrument` (`protocols.py`). `SimMicroscope` replays a
`Dataset` (built-in synthetic physics from `load_builtin`, or real data from
`load_dataset`) with a microscope's timing, beam blanking, dose and dead-man's switch;
`serve_instrument` puts any instrument on the bus and `InstrumentClient` is the agent's
side of it. Real microscopes plug in as adapters (see docs/instruments.md).
"""

from dkl.instruments.client import InstrumentClient
from dkl.instruments.datasets import Dataset, builtin_names, load_builtin
from dkl.instruments.faults import Faults, ReplyDropped
from dkl.instruments.launch import SimConfig, build_sim, open_dataset, run_sim
from dkl.instruments.loaders import DatasetError, load_dataset, load_image
from dkl.instruments.protocols import (
    Acquirable,
    Blankable,
    Describable,
    Description,
    Instrument,
    InstrumentError,
    Measurement,
    Monitorable,
    Status,
    Survey,
    Surveyable,
)
from dkl.instruments.resample import resample_to_grid
from dkl.instruments.server import (
    InstrumentServer,
    run_instrument_server,
    serve_instrument,
)
from dkl.instruments.sim import Noise, SimMicroscope, Timing

__all__ = [
    "Acquirable",
    "Blankable",
    "Dataset",
    "DatasetError",
    "Describable",
    "Description",
    "Faults",
    "Instrument",
    "InstrumentClient",
    "InstrumentError",
    "InstrumentServer",
    "Measurement",
    "Monitorable",
    "Noise",
    "ReplyDropped",
    "SimConfig",
    "SimMicroscope",
    "Status",
    "Survey",
    "Surveyable",
    "Timing",
    "build_sim",
    "builtin_names",
    "load_builtin",
    "load_dataset",
    "load_image",
    "open_dataset",
    "resample_to_grid",
    "run_instrument_server",
    "run_sim",
    "serve_instrument",
]
