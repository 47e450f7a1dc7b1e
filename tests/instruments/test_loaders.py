"""Loaders: the project's .npz/HDF5 format, microscopists' files, and what real files do."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dkl.instruments.loaders import DatasetError, load_dataset, load_image
from dkl.instruments.resample import resample_to_grid

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SI_EELS = DATA / "scifireaders_SI_EELS"
SIO2_EDS = DATA / "particlespy_SiO2_EDS"


def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (real third-party data, see shared/data/README.md)")


def test_npz_spectra_with_survey_at_higher_resolution(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    spectra = rng.poisson(5.0, size=(4, 3, 10)).astype(np.uint16)  # integer counts
    image = rng.random((8, 6)).astype(np.float64)
    path = tmp_path / "d.npz"
    np.savez(
        path, image=image, spectra=spectra, energy=np.arange(10) * 0.5 + 100, pixel_size_nm=2.5
    )
    ds = load_dataset(path)
    assert ds.modality == "eels" and ds.shape == (4, 3)
    assert ds.spectra is not None and ds.spectra.dtype == np.float32
    np.testing.assert_array_equal(ds.spectra, spectra.astype(np.float32))
    np.testing.assert_allclose(ds.image[1, 2], image[2:4, 4:6].mean(), rtol=1e-6)
    assert ds.survey_original is not None and ds.survey_original.shape == (8, 6)
    assert ds.pixel_size_nm == 2.5 and ds.meta["stored_dtype"] == "uint16"


def test_hdf5_patterns_with_calibrations(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    patterns = np.ones((3, 5, 8, 8), dtype=np.float32)
    with h5py.File(path, "w") as f:
        f["image"] = np.ones((3, 5), dtype=np.float32)
        f["patterns"] = patterns
        f.attrs["mrad_per_px"] = 1.5
        f.attrs["center"] = (3.5, 3.0)
    ds = load_dataset(path)
    assert ds.modality == "4dstem" and ds.shape == (3, 5)
    assert ds.mrad_per_px == 1.5 and ds.center == (3.5, 3.0)
    assert ds.describe()["detector_shape"] == (8, 8)


def test_missing_calibration_errors_then_override(tmp_path: Path) -> None:
    path = tmp_path / "nocal.npz"
    np.savez(path, spectra=np.zeros((2, 2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="energy_offset"):
        load_dataset(path)
    ds = load_dataset(path, energy_offset=10.0, dispersion=0.25)
    assert ds.energy is not None and ds.energy[-1] == 11.0
    assert ds.image.shape == (2, 2)  # no survey in the file: total signal per position
    with pytest.raises(ValueError, match="unknown override"):
        load_dataset(path, dispersoin=0.25)


def test_broken_and_unknown_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"this is not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(broken)
    broken_h5 = tmp_path / "broken.h5"
    broken_h5.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(broken_h5)
    text = tmp_path / "x.txt"
    text.write_text("x")
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(text)
    with pytest.raises(ValueError, match="no such file"):
        load_dataset(tmp_path / "missing.dm3")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, image=np.zeros((4, 4)), spectra=np.zeros((4, 4, 3)), energy=[3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="increasing"):
        load_dataset(wrong)


def test_resample_rules() -> None:
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    np.testing.assert_allclose(resample_to_grid(image, (3, 3))[0, 0], image[:2, :2].mean())
    assert resample_to_grid(image, (4, 4)).shape == (4, 4)
    with pytest.raises(ValueError, match="aspect"):
        resample_to_grid(image, (2, 6))


@pytest.mark.data
def test_scifireaders_eels_energy_first_and_survey_on_grid() -> None:
    _need(SI_EELS)
    ds = load_dataset(SI_EELS / "SI-EELS_Spectrum_Image.dm3", survey=SI_EELS / "SI-HAADF.dm3")
    assert ds.modality == "eels"
    assert ds.spectra is not None and ds.spectra.shape == (49, 6, 1024)
    assert ds.energy is not None
    assert ds.energy[0] == 350.0 and ds.energy[-1] == 861.5
    np.testing.assert_allclose(np.diff(ds.energy), 0.5)
    assert ds.image.shape == (49, 6)
    assert ds.survey_original is not None and ds.survey_original.shape == (1568, 192)
    np.testing.assert_allclose(
        ds.image[10, 3], ds.survey_original[320:352, 96:128].mean(), rtol=1e-5
    )
    # the Ti L2,3 edge (~456 eV) is really there: a jump in the mean spectrum
    mean = ds.spectra.mean(axis=(0, 1))
    pre = mean[(ds.energy > 440) & (ds.energy < 452)].mean()
    post = mean[(ds.energy > 458) & (ds.energy < 470)].mean()
    assert post > pre


@pytest.mark.data
def test_particlespy_eds_counts_and_calibration() -> None:
    _need(SIO2_EDS)
    ds = load_dataset(
        SIO2_EDS / "SiO2_EDS_Spectrum_Image.hspy", survey=SIO2_EDS / "SiO2_HAADF_Image.hspy"
    )
    assert ds.modality == "eds"
    assert ds.spectra is not None and ds.spectra.shape == (128, 128, 2048)
    assert ds.spectra.dtype == np.float32 and ds.meta["stored_dtype"] == "uint32"
    assert ds.energy is not None and ds.energy[0] == 0.0
    np.testing.assert_allclose(ds.energy[-1], 20470.0)
    np.testing.assert_allclose(np.diff(ds.energy), 10.0)
    assert ds.pixel_size_nm == pytest.approx(8.55, abs=0.01)
    assert ds.image.shape == (128, 128) and ds.survey_original is None
    total = ds.spectra.sum(axis=2)
    assert np.corrcoef(total.ravel(), ds.image.ravel())[0, 1] > 0.9


@pytest.mark.data
def test_emd_4dstem_depth_series_needs_depth_and_calibration() -> None:
    folder = DATA / "rsciio_4dstem_fixture"
    _need(folder)
    path = folder / "Si100_4D.emd"
    with pytest.raises(DatasetError, match="depth="):
        load_dataset(path)
    with pytest.raises(DatasetError, match="beam_energy_kev"):
        load_dataset(path, depth=0)
    ds = load_dataset(path, depth=1, beam_energy_kev=200.0)
    assert ds.modality == "4dstem" and ds.patterns is not None
    assert ds.patterns.shape == (11, 11, 8, 8) and ds.pixel_size_nm == 0.5
    # 0.184 1/nm per pixel at 200 kV (lambda = 2.508 pm) is 0.462 mrad per pixel
    assert ds.mrad_per_px == pytest.approx(0.4619, abs=1e-3)


def test_load_image_errors(tmp_path: Path) -> None:
    path = tmp_path / "noimage.npz"
    np.savez(path, spectra=np.zeros((2, 2, 3)))
    with pytest.raises(DatasetError, match="cannot read an image"):
        load_image(path)
    with pytest.raises(DatasetError, match="no such file"):
        load_image(tmp_path / "absent.dm3")
