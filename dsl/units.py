"""Units of the language and their conversion to canonical units (eV, mrad, px, s, e/A2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    kind: str  # energy | angle | length | time | dose
    canonical: str
    factor: float  # canonical = value * factor (lengths in nm need the pixel size)


UNITS: dict[str, Unit] = {
    "eV": Unit("energy", "eV", 1.0),
    "keV": Unit("energy", "eV", 1000.0),
    "mrad": Unit("angle", "mrad", 1.0),
    "px": Unit("length", "px", 1.0),
    "nm": Unit("length", "px", float("nan")),
    "A": Unit("length", "px", float("nan")),
    "ms": Unit("time", "s", 1e-3),
    "s": Unit("time", "s", 1.0),
    "min": Unit("time", "s", 60.0),
    "e/A2": Unit("dose", "e/A2", 1.0),
}

#: nm per written unit, for lengths converted to pixels through the pixel size.
NM_PER_UNIT = {"nm": 1.0, "A": 0.1}

KIND_EXAMPLE = {
    "energy": "eV",
    "angle": "mrad",
    "length": "px",
    "time": "s",
    "dose": "e/A2",
}


def kind_of(unit: str | None) -> str | None:
    """The kind of a unit (`energy`, `angle`, ...), None for a bare number."""
    return UNITS[unit].kind if unit else None
