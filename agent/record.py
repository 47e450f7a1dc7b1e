"""What a run has measured so far, and its results file.

Kept as plain lists so that resume can rebuild it from the journal's `run.event`
documents alone, and written at the end as `results.npz` (see docs/design.md §8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIMINGS = ("move", "settle", "exposure", "scalarize", "train", "predict", "acquire", "step")


@dataclass
class RunRecord:
    """Every measured point in order, failed ones included."""

    positions: list[tuple[int, int]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # candidate index of each point
    scalars: list[float | None] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    doses: list[float] = field(default_factory=list)

    def add(self, index: int, x: int, y: int, scalar: float | None, timings: dict[str, float],
            dose: float) -> None:
        self.indices.append(int(index))
        self.positions.append((int(x), int(y)))
        self.scalars.append(None if scalar is None else float(scalar))
        self.timings.append({k: float(timings.get(k, 0.0)) for k in TIMINGS})
        self.doses.append(float(dose))

    @property
    def count(self) -> int:
        return len(self.positions)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Candidate indices and values of the successful points."""
        ok = [(i, s) for i, s in zip(self.indices, self.scalars) if s is not None]
        idx = np.array([i for i, _ in ok], dtype=np.int64)
        val = np.array([s for _, s in ok], dtype=np.float64)
        return idx, val

    def failed_indices(self) -> np.ndarray:
        """Candidate indices of the points whose scalar failed."""
        return np.array([i for i, s in zip(self.indices, self.scalars) if s is None],
                        dtype=np.int64)

    def best(self, maximize: bool) -> float | None:
        values = [s for s in self.scalars if s is not None]
        if not values:
            return None
        return max(values) if maximize else min(values)

    @property
    def total_dose(self) -> float:
        return float(sum(self.doses))

    @classmethod
    def from_events(cls, events: list[dict[str, Any]]) -> RunRecord:
        """Rebuild from `run.event` bodies (journal order)."""
        record = cls()
        for e in sorted(events, key=lambda e: e["index"]):
            record.add(e["candidate"], e["x"], e["y"], e.get("scalar"), e.get("timings", {}),
                       e.get("dose", 0.0))
        return record


def write_results(path: Path, record: RunRecord, survey: np.ndarray, positions: np.ndarray,
                  maps: dict[str, np.ndarray | None], maximize: bool) -> Path:
    """Write `results.npz` atomically (temp file, fsync, rename)."""
    h, w = survey.shape
    dose_map = np.zeros((h, w), np.float64)
    for (x, y), d in zip(record.positions, record.doses):
        dose_map[y, x] += d
    scalars = np.array([np.nan if s is None else s for s in record.scalars], np.float64)
    best = np.full(len(scalars), np.nan)
    running = None
    for i, s in enumerate(scalars):
        if np.isfinite(s):
            running = s if running is None else (max(running, s) if maximize else min(running, s))
        best[i] = np.nan if running is None else running
    arrays: dict[str, np.ndarray] = {
        "positions": np.array(record.positions, np.int64).reshape(-1, 2),
        "scalars": scalars,
        "failed": ~np.isfinite(scalars),
        "best_so_far": best,
        "survey": survey.astype(np.float32),
        "dose_map": dose_map,
        "candidates": positions.astype(np.int64),
    }
    for name in ("prediction", "uncertainty", "acquisition"):
        grid = np.full((h, w), np.nan, np.float32)
        values = maps.get(name)
        if values is not None:
            grid[positions[:, 1], positions[:, 0]] = values
        arrays[name] = grid
    for key in TIMINGS:
        arrays[f"timing_{key}"] = np.array([t[key] for t in record.timings], np.float64)
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
