"""Let TensorFlow find the CUDA libraries that `pip install ".[gpu]"` installs.

`tensorflow[and-cuda]` brings CUDA as `nvidia-*-cu12` wheels, and TensorFlow finds them
through the RUNPATH of `libtensorflow_framework.so.2`. In TensorFlow 2.21 that list lacks
`nvidia/cusolver/lib` (2.20's has it), so on a GPU machine TensorFlow logs "Cannot dlopen
some GPU libraries", registers no GPU and trains on the CPU with only that log line to
say so: that is what a fresh `pip install ".[gpu]"` gave on an H200 on 2026-11-26.
Loading the library by its full path first fixes it: the dynamic loader hands
TensorFlow's later `dlopen("libcusolver.so.11")` the library already loaded under that
name.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

#: wheel folder under `nvidia/` -> the library TensorFlow opens by name from it.
CUDA_LIBRARIES = {"cusolver": "libcusolver.so.11"}

log = logging.getLogger(__name__)


def pip_nvidia_roots() -> list[str]:
    """The `nvidia/` folders of the installed CUDA wheels (none without them)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    return list(spec.submodule_search_locations or []) if spec else []


def pip_cuda_libraries(roots: Iterable[str] | None = None) -> list[Path]:
    """The files of `CUDA_LIBRARIES` present under `roots` (default: the installed wheels)."""
    return [path for root in (pip_nvidia_roots() if roots is None else roots)
            for folder, name in CUDA_LIBRARIES.items()
            if (path := Path(root) / folder / "lib" / name).is_file()]


def preload_pip_cuda_libraries(roots: Iterable[str] | None = None) -> list[str]:
    """Load each library of `CUDA_LIBRARIES` found under `roots`; return their paths.

    Call before TensorFlow first lists its devices. Without the CUDA wheels, or off
    Linux, it does nothing; a library that will not load is left for TensorFlow to
    report.
    """
    if not sys.platform.startswith("linux"):
        return []
    loaded = []
    for path in pip_cuda_libraries(roots):
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        loaded.append(str(path))
    return loaded


@functools.cache
def unused_gpu() -> str | None:
    """Why an NVIDIA GPU that the driver offers goes unused by TensorFlow, or None.

    Logs the reason as a warning, once per process: otherwise a GPU machine trains on its
    CPU with only TensorFlow's own log line to say so. None also when the GPU is hidden on
    purpose (`CUDA_VISIBLE_DEVICES=` or `-1`), as docs/model.md suggests for small runs.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return None
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    import tensorflow as tf

    if count.value == 0 or tf.config.list_physical_devices("GPU"):
        return None
    if not tf.test.is_built_with_cuda():
        problem = (f"{count.value} NVIDIA GPU(s) present, but this TensorFlow has no CUDA "
                   "support: install with `pip install -e \".[gpu]\"` to use them")
    else:
        problem = (f"{count.value} NVIDIA GPU(s) present, but TensorFlow registered none: "
                   "its log line 'Cannot dlopen some GPU libraries' names the CUDA library "
                   "it could not load (`pip install -e \".[gpu]\"` installs them). The "
                   "model trains on the CPU")
    log.warning(problem)
    return problem
