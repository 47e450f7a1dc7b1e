"""What `dkl check` may know about an instrument without touching hardware.

The built-in simulated datasets are part of the language contract (LANGUAGE.md), so their
facts live here. Facts about a dataset file or a running server come from a resolver the
caller passes in (the CLI asks `dkl.instruments`), keeping this package free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dkl.dsl.plan import InstrumentSpec


@dataclass(frozen=True)
class InstrumentFacts:
    """Modality, grid and signal range of an instrument, as far as they are known."""

    name: str
    modality: str  # eels | eds | 4dstem; "spectrum" when a file holds spectra of either kind
    shape: tuple[int, int] | None = None  # (height, width) of the measurement grid
    signal_range: tuple[float, float] | None = None  # eV for spectra, mrad for patterns
    pixel_size_nm: float | None = None


BUILTIN: dict[str, InstrumentFacts] = {
    "plasmonic": InstrumentFacts("plasmonic", "eels", (64, 64), (-0.5, 4.5), 1.0),
    "core-loss": InstrumentFacts("core-loss", "eels", (64, 64), (350.0, 900.0), 0.5),
    "4dstem": InstrumentFacts("4dstem", "4dstem", (64, 64), (0.0, 100.0), 0.2),
}

#: The built-in dataset used when a plan names none, by modality (none holds EDS spectra:
#: an EDS experiment names a dataset file or an instrument).
DEFAULT_BUILTIN = {"eels": "plasmonic", "4dstem": "4dstem"}

#: Looks up facts for an instrument that is not built in; raises OSError or ValueError
#: with a user-facing message when the file is missing or unusable; None when unknown.
Resolver = Callable[[InstrumentSpec], "InstrumentFacts | None"]
