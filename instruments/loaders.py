"""Real data in: the project's .npz/HDF5 dataset format and microscopists' own files.

`.npz`/`.h5` files hold `image`, then `spectra` (H, W, E) with `energy` (E, eV) or
`patterns` (H, W, Qy, Qx), and optional calibrations `pixel_size_nm`, `mrad_per_px`,
`center`, `dispersion` + `energy_offset` (when `energy` is absent), `modality`.
DigitalMicrograph `.dm3/.dm4`, HyperSpy `.hspy` and `.emd` go through rosettasciio; their
axes are recognised by units and names, not by position, because real files store the
energy axis first or mark it as navigation. A survey recorded at another resolution is
block-averaged (or area-resampled) onto the measurement grid; the original is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkl.instruments.datasets import Dataset
from dkl.instruments.resample import resample_to_grid

_ENERGY_UNITS = {"ev": 1.0, "kev": 1000.0}
_LENGTH_UNITS = {"nm": 1.0, "µm": 1000.0, "um": 1000.0, "å": 0.1, "a": 0.1, "pm": 1e-3, "m": 1e9}
OVERRIDES = frozenset(
    {
        "energy",
        "energy_offset",
        "dispersion",
        "pixel_size_nm",
        "mrad_per_px",
        "center",
        "modality",
        "default_exposure",
        "name",
        "depth",
        "beam_energy_kev",
    }
)
_RSCIIO = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".hspy": "hspy", ".emd": "emd"}


class DatasetError(ValueError):
    """A file that cannot become a dataset: unreadable, unknown, or missing a calibration."""


def load_dataset(
    path: str | Path, survey: str | Path | np.ndarray | None = None, **overrides: Any
) -> Dataset:
    """Load a dataset for the simulated microscope from a file.

    Args:
        path: `.npz`, `.h5`/`.hdf5`, `.dm3`/`.dm4`, `.hspy` or `.emd` file holding the
            spectrum image or 4D-STEM data (and, for .npz/.h5, the survey `image`).
        survey: an image file or (h, w) array recorded over the same field of view; it
            is resampled onto the measurement grid. Default: the file's own image, else
            the total signal per position.
        overrides: calibrations that replace or supply what the file lacks:
            `energy` (array, eV), `energy_offset` + `dispersion` (eV), `pixel_size_nm`,
            `mrad_per_px`, `center`, `modality`, `default_exposure`, `name`; for 4D-STEM
            files also `depth` (slice of a 5-D depth series) and `beam_energy_kev`
            (converts detector axes in 1/nm or 1/Å to mrad).

    Raises:
        DatasetError: (a ValueError) unreadable file, unknown format, or a calibration that
            is missing and not supplied as an override (the message names the override).
    """
    unknown = set(overrides) - OVERRIDES
    if unknown:
        raise DatasetError(f"unknown override(s) {sorted(unknown)}; known: {sorted(OVERRIDES)}")
    overrides = dict(overrides)
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            fields = _read_npz(path)
        elif suffix in (".h5", ".hdf5"):
            fields = _read_hdf5(path)
        elif suffix in _RSCIIO:
            fields = _read_rsciio(path, _RSCIIO[suffix], overrides)
        else:
            known = [".npz", ".h5", ".hdf5", *_RSCIIO]
            raise DatasetError(f"{path}: unknown format {suffix!r}; expected one of {known}")
    except DatasetError:
        raise
    except Exception as err:  # a reader's own failure on a broken file
        raise DatasetError(f"{path}: cannot read ({type(err).__name__}: {err})") from err
    fields.setdefault("name", path.name)
    if survey is not None:
        fields["image"] = _survey_array(survey)
    return _build(fields, overrides)


def _survey_array(survey: str | Path | np.ndarray) -> np.ndarray:
    return survey if isinstance(survey, np.ndarray) else load_image(survey)


def load_image(path: str | Path) -> np.ndarray:
    """Read a 2-D image (survey) from .npz/.h5 (`image`) or any rosettasciio format."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        if suffix == ".npz":
            return np.asarray(_read_npz(path)["image"])
        if suffix in (".h5", ".hdf5"):
            return np.asarray(_read_hdf5(path)["image"])
        if suffix in _RSCIIO:
            images = [
                s["data"] for s in _rsciio_signals(path, _RSCIIO[suffix]) if s["data"].ndim == 2
            ]
            if not images:
                raise DatasetError(f"{path}: holds no 2-D image")
            return np.asarray(images[0])
    except DatasetError:
        raise
    except Exception as err:  # a reader's own failure on a broken file
        raise DatasetError(f"{path}: cannot read an image ({type(err).__name__}: {err})") from err
    raise DatasetError(f"{path}: unknown image format {suffix!r}")


def _read_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _read_hdf5(path: Path) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as handle:
        out.update({key: handle.attrs[key] for key in handle.attrs})
        for key, item in handle.items():
            if isinstance(item, h5py.Dataset):
                out[key] = item[()]
    for key, value in list(out.items()):
        if isinstance(value, bytes):
            out[key] = value.decode()
    return out


def _rsciio_signals(path: Path, module: str) -> list[dict[str, Any]]:
    import importlib

    reader = importlib.import_module(f"rsciio.{module}")
    return list(reader.file_reader(str(path)))


def _read_rsciio(path: Path, module: str, overrides: dict[str, Any]) -> dict[str, Any]:
    signals = _rsciio_signals(path, module)
    cubes = [s for s in signals if np.asarray(s["data"]).ndim >= 3]
    images = [s for s in signals if np.asarray(s["data"]).ndim == 2]
    if not cubes:
        raise DatasetError(
            f"{path}: no spectrum image or 4D-STEM data (found {len(signals)} 2-D signals)"
        )
    cube = max(cubes, key=lambda s: np.asarray(s["data"]).size)
    data, axes = np.asarray(cube["data"]), list(cube["axes"])
    if data.ndim == 5:
        data, axes = _select_depth(data, axes, overrides.pop("depth", None), path)
    fields = _from_axes(data, axes, path, overrides.pop("beam_energy_kev", None))
    signal_type = str(cube.get("metadata", {}).get("Signal", {}).get("signal_type", "")).upper()
    if data.ndim == 3 and ("EDS" in signal_type or "EELS" in signal_type):
        fields["modality"] = "eds" if "EDS" in signal_type else "eels"  # the file says so
    if images:
        fields["image"] = np.asarray(images[0]["data"])
    return fields


def _unit(axis: dict[str, Any]) -> str:
    return str(axis.get("units") or "").strip().lower()


def _is_energy(axis: dict[str, Any]) -> bool:
    name = str(axis.get("name") or "").lower()
    return _unit(axis) in _ENERGY_UNITS or "energy" in name


def _is_angle(axis: dict[str, Any]) -> bool:
    return _unit(axis) in ("mrad", "rad", "1/nm", "1/å", "1/a", "a^-1", "nm^-1") or str(
        axis.get("name") or ""
    ).lower() in ("qx", "qy", "kx", "ky")


def _select_depth(
    data: np.ndarray, axes: list[dict[str, Any]], depth: int | None, path: Path
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Pick one slice of a leading extra axis (e.g. a depth series of 4D-STEM scans)."""
    axes = _ordered(axes)
    if depth is None:
        raise DatasetError(
            f"{path}: 5-D data {data.shape} (axis 0: {axes[0].get('name')!r}); "
            f"pass depth=0..{data.shape[0] - 1} to pick one 4D-STEM scan"
        )
    if not 0 <= int(depth) < data.shape[0]:
        raise DatasetError(f"{path}: depth={depth} is outside 0..{data.shape[0] - 1}")
    rest = [dict(a, index_in_array=i) for i, a in enumerate(axes[1:])]
    return data[int(depth)], rest


def _ordered(axes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(axes, key=lambda a: int(a.get("index_in_array", axes.index(a))))


def _wavelength_nm(beam_energy_kev: float) -> float:
    """Relativistic electron wavelength."""
    volts = beam_energy_kev * 1e3
    return 1.226426 / np.sqrt(volts * (1 + 0.97846e-6 * volts))


def _from_axes(
    data: np.ndarray, axes: list[dict[str, Any]], path: Path, beam_energy_kev: float | None = None
) -> dict[str, Any]:
    """Reorder `data` to (y, x, signal...) using the axes' units and names."""
    axes = _ordered(axes)
    if data.ndim == 3:
        energy_axes = [i for i, a in enumerate(axes) if _is_energy(a)]
        if len(energy_axes) != 1:
            raise DatasetError(
                f"{path}: cannot tell which of the axes {[a.get('name') for a in axes]} is the "
                "energy axis (no eV/keV units); pass energy=... or fix the file's calibration"
            )
        e = energy_axes[0]
        spatial = [i for i in range(3) if i != e]
        spectra = np.transpose(data, (*_yx_order(axes, spatial), e))
        ax = axes[e]
        factor = _ENERGY_UNITS.get(_unit(ax), 1.0)
        energy = (_clean(ax["offset"]) + _clean(ax["scale"]) * np.arange(int(ax["size"]))) * factor
        fields: dict[str, Any] = {"spectra": spectra, "energy": energy}
        # Without metadata: X-ray spectra span keV at eV-coarse channels, EELS does not.
        fields["modality"] = (
            "eds" if energy[-1] > 5000 and float(ax["scale"]) * factor >= 5 else "eels"
        )
    elif data.ndim == 4:
        det = [i for i, a in enumerate(axes) if _is_angle(a)]
        if len(det) != 2:
            det = [2, 3]  # rosettasciio's (scan y, scan x, qy, qx) order when units are absent
        spatial = [i for i in range(4) if i not in det]
        order = (*_yx_order(axes, spatial), *_yx_order(axes, det))
        fields = {"patterns": np.transpose(data, order), "modality": "4dstem"}
        unit, scale = _unit(axes[det[0]]).replace(" ", ""), abs(_clean(axes[det[0]]["scale"]))
        if unit == "mrad":
            fields["mrad_per_px"] = scale
        elif unit in ("1/nm", "nm^-1", "1/å", "1/a", "a^-1") and beam_energy_kev is not None:
            per_nm = scale if "nm" in unit else scale * 10.0
            fields["mrad_per_px"] = per_nm * _wavelength_nm(float(beam_energy_kev)) * 1e3
        elif unit:
            fields["detector_units"] = unit  # converted only with beam_energy_kev
    else:
        raise DatasetError(
            f"{path}: {data.ndim}-D data {data.shape} is not (y, x, E) or (y, x, qy, qx)"
        )
    y_axis = axes[_yx_order(axes, spatial)[0]]
    factor = _LENGTH_UNITS.get(_unit(y_axis))
    if factor is not None:
        fields["pixel_size_nm"] = float(y_axis["scale"]) * factor
    return fields


def _clean(value: Any) -> float:
    """A calibration stored as float32 (0.0099999998 keV) read back as the value meant (0.01)."""
    value = float(value)
    single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def _yx_order(axes: list[dict[str, Any]], spatial: list[int]) -> list[int]:
    names = [str(axes[i].get("name") or "").lower().split("_")[-1] for i in spatial]
    if names == ["x", "y"]:
        return spatial[::-1]
    return spatial


def _build(fields: dict[str, Any], overrides: dict[str, Any]) -> Dataset:
    fields = {**fields, **{k: v for k, v in overrides.items() if v is not None}}
    fields.pop("depth", None), fields.pop("beam_energy_kev", None)
    has_patterns = fields.get("patterns") is not None
    modality = str(fields.get("modality") or ("4dstem" if has_patterns else "eels"))
    data = np.asarray(fields["patterns"] if has_patterns else fields.get("spectra"))
    if data.ndim not in (3, 4):
        raise DatasetError("the file holds neither `spectra` (H, W, E) nor `patterns` (H, W, Q, Q)")
    stored_dtype = str(data.dtype)
    data = np.ascontiguousarray(data, dtype=np.float32)  # integer counts become float32
    grid = data.shape[:2]
    energy = None
    if not has_patterns:
        if fields.get("energy") is not None:
            energy = np.asarray(fields["energy"], dtype=np.float64)
        elif "dispersion" in fields:
            offset = float(fields.get("energy_offset", 0.0))
            energy = offset + float(fields["dispersion"]) * np.arange(data.shape[2])
        else:
            raise DatasetError(
                "no energy axis: pass energy=... or energy_offset=... and dispersion=..."
            )
    elif fields.get("mrad_per_px") is None:
        units = fields.get("detector_units")
        hint = f" (the detector axes are in {units}: or pass beam_energy_kev=...)" if units else ""
        raise DatasetError(f"no detector calibration: pass mrad_per_px=...{hint}")
    raw_image = fields.get("image")
    if raw_image is None:
        image = data.sum(axis=tuple(range(2, data.ndim)))
        survey_original = None
    else:
        survey_original = np.asarray(raw_image, dtype=np.float32)
        image = resample_to_grid(survey_original, grid)
    center = fields.get("center")
    if center is not None:
        cy, cx = (float(c) for c in np.asarray(center, dtype=np.float64).ravel()[:2])
        center = (cy, cx)
    pixel = fields.get("pixel_size_nm")
    return Dataset(
        name=str(fields.get("name", "dataset")),
        modality=modality,
        image=np.asarray(image, dtype=np.float32),
        spectra=None if has_patterns else data,
        energy=energy,
        patterns=data if has_patterns else None,
        mrad_per_px=float(fields["mrad_per_px"]) if has_patterns else None,
        center=center,
        pixel_size_nm=float(pixel) if pixel is not None else None,
        survey_original=survey_original
        if survey_original is not None and survey_original.shape != grid
        else None,
        default_exposure=float(fields.get("default_exposure", 0.01)),
        meta={"source": fields.get("name"), "stored_dtype": stored_dtype},
    )
