"""Surrogate models the agent drives: one model per module.

`DKLModel` (`dkl_gp.py`) is the online deep-kernel GP of the active-learning loop;
`VectorDKL` (`vector_dkl.py`) reconstructs whole spectra for offline analysis.
"""

from dkl.agent.models.dkl_gp import DKLModel, FitReport
from dkl.agent.models.vector_dkl import VectorDKL

__all__ = ["DKLModel", "FitReport", "VectorDKL"]
