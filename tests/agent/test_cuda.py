"""Finding pip's CUDA libraries for TensorFlow, and saying when a GPU goes unused."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from dkl.agent.models import _cuda


def _fake_root(tmp_path: Path, content: Path | bytes) -> Path:
    lib = tmp_path / "nvidia" / "cusolver" / "lib"
    lib.mkdir(parents=True)
    target = lib / "libcusolver.so.11"
    if isinstance(content, Path):
        shutil.copy(content, target)
    else:
        target.write_bytes(content)
    return tmp_path / "nvidia"


def test_preload_loads_the_library_from_the_wheel_folder(tmp_path: Path) -> None:
    shared_object = Path(pytest.importorskip("_ctypes_test").__file__)
    root = _fake_root(tmp_path, shared_object)
    loaded = _cuda.preload_pip_cuda_libraries([str(root)])
    assert loaded == [str(root / "cusolver" / "lib" / "libcusolver.so.11")]
    assert loaded[0] in Path("/proc/self/maps").read_text()


def test_preload_does_nothing_without_the_wheels(tmp_path: Path) -> None:
    assert _cuda.preload_pip_cuda_libraries([str(tmp_path)]) == []
    assert _cuda.preload_pip_cuda_libraries([]) == []


def test_preload_leaves_a_broken_library_to_tensorflow(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, b"not a shared object")
    assert _cuda.preload_pip_cuda_libraries([str(root)]) == []


def test_with_the_cuda_wheels_cusolver_opens_by_name_after_the_import() -> None:
    """Where `pip install ".[gpu]"` put cuSOLVER: what TensorFlow 2.21's dlopen needs."""
    if not _cuda.pip_cuda_libraries():
        pytest.skip("no nvidia-cusolver wheel installed (only `.[gpu]` brings it)")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = "import ctypes, dkl.agent.models; ctypes.CDLL('libcusolver.so.11')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


class _Driver:
    """libcuda's two calls that `unused_gpu` makes, with a chosen device count."""

    def __init__(self, count: int) -> None:
        self.count = count

    def cuInit(self, flags: int) -> int:
        return 0

    def cuDeviceGetCount(self, out: object) -> int:
        out._obj.value = self.count  # type: ignore[attr-defined]
        return 0


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def install(count: int, registered: list[str]) -> None:
        monkeypatch.setattr(_cuda.ctypes, "CDLL", lambda name: _Driver(count))
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: registered)

    return install


def test_a_gpu_tensorflow_cannot_use_is_reported_once_as_a_warning(
        driver, caplog: pytest.LogCaptureFixture) -> None:
    driver(1, [])
    with caplog.at_level(logging.WARNING, logger=_cuda.__name__):
        problem = _cuda.unused_gpu.__wrapped__()
    assert problem is not None and "TensorFlow registered none" in problem
    assert "model trains on the CPU" in problem
    assert [r.getMessage() for r in caplog.records] == [problem]


def test_no_warning_when_tensorflow_uses_the_gpu_or_there_is_none(driver) -> None:
    driver(1, ["/physical_device:GPU:0"])
    assert _cuda.unused_gpu.__wrapped__() is None
    driver(0, [])
    assert _cuda.unused_gpu.__wrapped__() is None


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_no_warning_when_the_gpu_is_hidden_on_purpose(
        driver, monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    driver(1, [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert _cuda.unused_gpu.__wrapped__() is None


def test_no_warning_without_an_nvidia_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_driver(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_cuda.ctypes, "CDLL", no_driver)
    assert _cuda.unused_gpu.__wrapped__() is None
