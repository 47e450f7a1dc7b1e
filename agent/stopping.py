"""When a run is finished: the plan's stop conditions, evaluated on the run's progress."""

from __future__ import annotations

from dataclasses import dataclass

from dkl.dsl.plan import StopWhen


@dataclass(frozen=True)
class Progress:
    """What the stop conditions look at."""

    measurements: int
    elapsed_s: float
    max_uncertainty: float | None  # largest predicted std over candidates (None: no model)
    best: float | None
    dose: float


def _holds(value: float, op: str, threshold: float) -> bool:
    return {
        ">": value > threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        "<=": value <= threshold,
    }[op]


def stop_reason(conditions: tuple[StopWhen, ...], p: Progress) -> str | None:
    """The first condition that holds, in words, or None to go on."""
    for c in conditions:
        if c.kind == "after" and p.measurements >= c.value:
            return f"reached {int(c.value)} measurements"
        if c.kind == "time" and p.elapsed_s >= c.value:
            return f"time limit of {c.value:g} s reached"
        if c.kind == "uncertainty" and p.max_uncertainty is not None and _holds(
                p.max_uncertainty, c.op, c.value):
            return f"largest uncertainty {p.max_uncertainty:.4g} {c.op} {c.value:g}"
        if c.kind == "best" and p.best is not None and _holds(p.best, c.op, c.value):
            return f"best value {p.best:.4g} {c.op} {c.value:g}"
        if c.kind == "dose" and _holds(p.dose, c.op, c.value):
            return f"dose {p.dose:.4g} e/A2 {c.op} {c.value:g}"
    return None
