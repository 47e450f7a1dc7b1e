"""Fault injection for the simulated microscope: the failures a real one has, on demand.

Each fault is either tied to where it happens (a bad spot on the sample: NaN or saturated
spectra at given positions), to when it happens (the N-th acquisition: a hang, a dropped
reply, a stale frame, death), or drawn at a rate from the simulator's seeded generator.
`Faults.parse("nan_rate=0.1,die_after=5")` builds one from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dkl.instruments.protocols import InstrumentError


class ReplyDropped(InstrumentError):
    """The acquisition happened but its reply is lost; a server sends nothing back."""

    def __init__(self, index: int) -> None:
        super().__init__("reply_dropped", f"reply to acquisition {index} was dropped", True)


@dataclass(frozen=True)
class Faults:
    """What should go wrong, and when. The default is a healthy instrument.

    Attributes:
        delay_s: extra seconds added to every acquisition (a slow instrument).
        hang_at: acquisition indices (0-based) that hang for `hang_s` before replying, so
            a caller's deadline expires.
        hang_s: how long a hang lasts.
        drop_reply_at / drop_rate: acquisitions whose reply is lost (dose is delivered).
        nan_at / nan_rate: positions (x, y) whose data come back all NaN.
        saturate_at / saturate_rate: positions whose data come back clipped at
            `saturation` (a saturated detector).
        stale_at / stale_rate: acquisitions that return the previous frame again.
        drift_px_per_s: (vx, vy) probe drift; the probe lands at the requested position
            plus drift * elapsed time, rounded and clipped to the grid.
        die_after: the instrument dies during the acquisition after this many succeeded.
    """

    delay_s: float = 0.0
    hang_at: frozenset[int] = frozenset()
    hang_s: float = 5.0
    drop_reply_at: frozenset[int] = frozenset()
    drop_rate: float = 0.0
    nan_at: frozenset[tuple[int, int]] = frozenset()
    nan_rate: float = 0.0
    saturate_at: frozenset[tuple[int, int]] = frozenset()
    saturate_rate: float = 0.0
    saturation: float = 65535.0
    stale_at: frozenset[int] = frozenset()
    stale_rate: float = 0.0
    drift_px_per_s: tuple[float, float] = (0.0, 0.0)
    die_after: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop_rate", "nan_rate", "saturate_rate", "stale_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {rate}")
        if self.delay_s < 0 or self.hang_s < 0:
            raise ValueError("delay_s and hang_s must not be negative")
        if self.die_after is not None and self.die_after < 0:
            raise ValueError("die_after must not be negative")

    @property
    def any(self) -> bool:
        """True when at least one fault is configured."""
        return self != Faults()

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Build from `key=value` pairs separated by commas or spaces.

        Index sets are `1/4/9`, positions `3:4/5:6` (x:y), drift `vx:vy`.

        Example:
            >>> Faults.parse("nan_rate=0.1,hang_at=2/5,drift_px_per_s=0.5:0,die_after=7")
        """
        kinds = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.replace(",", " ").split():
            key, sep, raw = item.partition("=")
            if not sep or key not in kinds:
                raise ValueError(f"bad fault {item!r}; known keys: {', '.join(sorted(kinds))}")
            try:
                values[key] = _convert(key, raw)
            except ValueError as err:
                raise ValueError(f"bad value for fault {key!r}: {raw!r} ({err})") from err
        return cls(**values)


def _convert(key: str, raw: str) -> Any:
    if key in ("hang_at", "drop_reply_at", "stale_at"):
        return frozenset(int(v) for v in raw.split("/") if v)
    if key in ("nan_at", "saturate_at"):
        pairs = (v.split(":") for v in raw.split("/") if v)
        return frozenset((int(x), int(y)) for x, y in pairs)
    if key == "drift_px_per_s":
        vx, vy = raw.split(":")
        return (float(vx), float(vy))
    if key == "die_after":
        return int(raw)
    return float(raw)
