"""The scalarizer functions of the language: their arguments, modality and meaning.

One table drives the checker, `dkl explain` and the language reference, so a function is
added in one place. Argument kinds: `index` (a whole number >= 1), `energy_window`,
`angle_window`, `angle` (a radius), `scalar` (any expression), `peak` (a `peak(...)` call),
`peaks` (the name `peaks`).
"""

from __future__ import annotations

from dataclasses import dataclass

SPECTRUM = "spectrum"  # eels, eds
DIFFRACTION = "diffraction"  # 4dstem
ANY = "any"

MODALITIES = {"eels": SPECTRUM, "eds": SPECTRUM, "4dstem": DIFFRACTION}


@dataclass(frozen=True)
class Function:
    name: str
    needs: str  # SPECTRUM | DIFFRACTION | ANY
    params: tuple[tuple[str, ...], ...]  # per positional argument: the kinds it accepts
    meaning: str
    example: str
    keywords: tuple[tuple[str, str], ...] = ()  # (name, kind); all optional
    returns: str = "scalar"  # or "peak"


def _fn(*args: object, **kw: object) -> Function:
    return Function(*args, **kw)  # type: ignore[arg-type]


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        _fn("peak", SPECTRUM, (("index", "energy_window"),),
            "height of the n-th peak (from low energy, n >= 1), or the maximum in a window",
            "peak(1)", returns="peak"),
        _fn("energy", SPECTRUM, (("peak",),), "energy of a peak (eV)", "energy(peak(1))"),
        _fn("width", SPECTRUM, (("peak",),), "full width at half maximum of a peak (eV)",
            "width(peak(1.2 eV .. 1.6 eV))"),
        _fn("count", SPECTRUM, (("peaks",),), "number of peaks found", "count(peaks)"),
        _fn("mean", SPECTRUM, (("energy_window",),), "mean intensity in a window",
            "mean(1.0 eV .. 2.0 eV)"),
        _fn("band", SPECTRUM, (("energy_window",),), "same as `mean`", "band(1.0 eV .. 2.0 eV)"),
        _fn("sum", SPECTRUM, (("energy_window",),), "summed intensity in a window",
            "sum(1.0 eV .. 2.0 eV)"),
        _fn("max", SPECTRUM, (("energy_window",),), "maximum intensity in a window",
            "max(1.0 eV .. 2.0 eV)"),
        _fn("min", SPECTRUM, (("energy_window",),), "minimum intensity in a window",
            "min(1.0 eV .. 2.0 eV)"),
        _fn("centroid", SPECTRUM, (("energy_window",),),
            "intensity-weighted mean energy in a window (eV)", "centroid(3 eV .. 4.5 eV)"),
        _fn("edge", SPECTRUM, (("energy_window",),),
            "integral over the window after a power-law background fitted in `background` "
            "(default: a window of the same width just below)",
            "edge(455 eV .. 475 eV, background=420 eV .. 450 eV)",
            keywords=(("background", "energy_window"),)),
        _fn("ratio", ANY, (("scalar",), ("scalar",)), "a / b; fails per point when b is 0",
            "ratio(peak(1), peak(2))"),
        _fn("abs", ANY, (("scalar",),), "absolute value", "abs(com.x)"),
        _fn("log", ANY, (("scalar",),), "natural logarithm; fails per point when x <= 0",
            "log(sum(1 eV .. 3 eV))"),
        _fn("sqrt", ANY, (("scalar",),), "square root; fails per point when x < 0",
            "sqrt(peak(1))"),
        _fn("vbf", DIFFRACTION, (("angle",),), "virtual bright field: sum inside a radius",
            "vbf(10 mrad)"),
        _fn("vadf", DIFFRACTION, (("angle_window",),),
            "virtual annular dark field: sum in an annulus", "vadf(40 mrad .. 100 mrad)"),
        _fn("vabf", DIFFRACTION, (("angle_window",),),
            "virtual annular bright field: sum in an annulus", "vabf(5 mrad .. 10 mrad)"),
    ]
}

#: Named quantities usable as expressions, with what they need and mean.
REFS: dict[str, tuple[str, str]] = {
    "com.x": (DIFFRACTION, "centre of mass along x relative to the unscattered beam (mrad)"),
    "com.y": (DIFFRACTION, "centre of mass along y relative to the unscattered beam (mrad)"),
    "com.magnitude": (DIFFRACTION, "length of the centre-of-mass shift (mrad)"),
    "com.angle": (DIFFRACTION, "direction of the centre-of-mass shift (rad)"),
}

#: `band` is another name for `mean`: plans store the canonical name.
CANONICAL_NAME = {"band": "mean"}

ACQUISITIONS: dict[str, tuple[str, ...]] = {
    "ei": ("xi", "penalty"),
    "pi": ("xi", "penalty"),
    "ucb": ("beta", "penalty"),
    "uncertainty": ("penalty",),
    "thompson": ("penalty",),
    "random": (),
}

#: How `dkl fmt` spells acquisition names.
ACQUISITION_SPELLING = {"ei": "EI", "pi": "PI", "ucb": "UCB"}

KERNELS = ("rbf", "matern52")
PRECISIONS = ("single", "double")
SEED_KINDS = ("random", "grid")
STOP_QUANTITIES = ("uncertainty", "best", "dose")
