"""Load a finished run's `results.npz` into one checked record.

The run directory layout is the contract in docs/design.md §8 ("Run directory"). The
report reads it through this module only, so a malformed or truncated file gives one
clear `ReportError` instead of a `KeyError` deep inside the plotting code.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Timings in the order they happen inside one step (`step` is the whole step's wall time).
TIMING_ORDER = ("move", "settle", "exposure", "scalarize", "train", "predict", "acquire")
#: The parts of a step during which the microscope is busy (the rest it waits on the agent).
INSTRUMENT_TIMINGS = ("move", "settle", "exposure")

_MAP_KEYS = ("prediction", "uncertainty", "acquisition", "dose_map")


class ReportError(ValueError):
    """A run directory that cannot be reported on (missing or malformed files)."""


@dataclass(frozen=True)
class Results:
    """The arrays of `results.npz`, validated: N measurements on an H×W survey."""

    positions: np.ndarray  #: (N, 2) int, (x, y) in survey pixels
    scalars: np.ndarray  #: (N,) float, NaN for failed points
    failed: np.ndarray  #: (N,) bool
    best_so_far: np.ndarray  #: (N,) float
    survey: np.ndarray  #: (H, W) float
    prediction: np.ndarray  #: (H, W) float, NaN off-candidate
    uncertainty: np.ndarray  #: (H, W)
    acquisition: np.ndarray  #: (H, W)
    dose_map: np.ndarray  #: (H, W)
    timings: dict[str, np.ndarray] = field(default_factory=dict)  #: name -> (N,) seconds

    @property
    def num(self) -> int:
        return int(self.positions.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.survey.shape[0]), int(self.survey.shape[1]))

    def idle_fraction(self) -> float | None:
        """Fraction of the run's step time during which the microscope was not busy.

        Busy means moving, settling or exposing; everything else in a step (scalarize,
        train, predict, acquire, bookkeeping) is time the beam waits on the agent.
        None when the step timing is absent or zero.
        """
        step = self.timings.get("step")
        if step is None or not np.isfinite(step).any():
            return None
        total = float(np.nansum(step))
        if total <= 0:
            return None
        busy = sum(
            float(np.nansum(self.timings[k])) for k in INSTRUMENT_TIMINGS if k in self.timings
        )
        return min(1.0, max(0.0, 1.0 - busy / total))


def load_results(path: Path) -> Results:
    """Read and check `results.npz`; raises `ReportError` with the reason when malformed."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such file (a run directory holds results.npz)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ReportError(f"{path}: not a readable .npz file ({err})") from err

    missing = [
        k
        for k in ("positions", "scalars", "failed", "best_so_far", "survey", *_MAP_KEYS)
        if k not in arrays
    ]
    if missing:
        raise ReportError(f"{path}: missing arrays {', '.join(missing)}")

    survey = arrays["survey"].astype(float)
    if survey.ndim != 2:
        raise ReportError(f"{path}: survey must be H×W, got shape {survey.shape}")
    for key in _MAP_KEYS:
        if arrays[key].shape != survey.shape:
            raise ReportError(
                f"{path}: {key} has shape {arrays[key].shape}, the survey {survey.shape}"
            )

    positions = arrays["positions"]
    if positions.size == 0:
        positions = positions.reshape(0, 2)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ReportError(f"{path}: positions must be (N, 2), got shape {positions.shape}")
    n = positions.shape[0]
    per_point = {"scalars": arrays["scalars"], "failed": arrays["failed"]}
    per_point["best_so_far"] = arrays["best_so_far"]
    timings = {k[len("timing_") :]: v for k, v in arrays.items() if k.startswith("timing_")}
    for key, value in {**per_point, **{f"timing_{k}": v for k, v in timings.items()}}.items():
        if value.shape != (n,):
            raise ReportError(f"{path}: {key} must have shape ({n},), got {value.shape}")

    return Results(
        positions=positions.astype(int),
        scalars=per_point["scalars"].astype(float),
        failed=per_point["failed"].astype(bool),
        best_so_far=per_point["best_so_far"].astype(float),
        survey=survey,
        prediction=arrays["prediction"].astype(float),
        uncertainty=arrays["uncertainty"].astype(float),
        acquisition=arrays["acquisition"].astype(float),
        dose_map=arrays["dose_map"].astype(float),
        timings={k: v.astype(float) for k, v in timings.items()},
    )
