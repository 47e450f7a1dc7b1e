"""dkl: autonomous electron-microscope experiments driven by deep-kernel learning.

The import root of the project. Its sub-packages are the top-level folders of the
repository: `dkl.dsl` (the `.dkl` language), `dkl.bus` (ZeroMQ + msgpack messaging),
`dkl.instruments` (microscopes, real and simulated), `dkl.agent` (the experiment loop and
the science core) and `dkl.viewer` (watchers, dashboard, reports). `dkl.main` is the CLI.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
