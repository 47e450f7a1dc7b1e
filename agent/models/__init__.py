"""Surrogate models the agent drives: one model per module.

`DKLModel` (`dkl_gp.py`) is the online deep-kernel GP of the active-learning loop;
`VectorDKL` (`vector_dkl.py`) reconstructs whole spectra for offline analysis.
"""

from dkl.agent.models._cuda import preload_pip_cuda_libraries

preload_pip_cuda_libraries()  # before TensorFlow lists its devices: see _cuda.py

from dkl.agent.models.dkl_gp import DKLModel, FitReport  # noqa: E402
from dkl.agent.models.vector_dkl import VectorDKL  # noqa: E402

__all__ = ["DKLModel", "FitReport", "VectorDKL"]
