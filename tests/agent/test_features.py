"""Candidates, patches and survey resampling (dkl.agent.features)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from dkl.agent.features import candidates, iter_patch_batches, patches, survey_to_grid
from dkl.dsl.plan import Region


def _standard(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / image.std()


# --- candidates ----------------------------------------------------------------------------


def test_candidates_cover_the_grid_row_major() -> None:
    pos = candidates((3, 4))
    assert pos.shape == (12, 2) and pos.dtype == np.int64
    assert pos[:5].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1]]
    assert pos[-1].tolist() == [3, 2]


def test_stride_starts_at_region_and_includes_its_end() -> None:
    pos = candidates((10, 10), stride_px=2, region=Region(x0=1.5, x1=6, y0=3, y1=7))
    xs, ys = sorted(set(pos[:, 0])), sorted(set(pos[:, 1]))
    assert xs == [2, 4, 6]  # ceil(1.5) = 2, inclusive x1 = 6
    assert ys == [3, 5, 7]
    assert len(pos) == 9


def test_region_is_clipped_to_the_grid() -> None:
    pos = candidates((5, 6), region=Region(x0=-3, x1=100, y0=2, y1=50))
    assert pos[:, 0].min() == 0 and pos[:, 0].max() == 5
    assert pos[:, 1].min() == 2 and pos[:, 1].max() == 4
    assert len(pos) == 6 * 3


def test_exclude_removes_inclusive_rectangles() -> None:
    pos = candidates((6, 6), exclude=(Region(1, 2, 1, 3), Region(5, 5, 0, 0)))
    kept = {tuple(p) for p in pos.tolist()}
    assert len(pos) == 36 - 2 * 3 - 1
    assert (1, 1) not in kept and (2, 3) not in kept and (5, 0) not in kept
    assert (3, 1) in kept and (1, 4) in kept and (0, 0) in kept


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride_px": 0},
        {"stride_px": 1.5},
        {"patch_px": 0},
        {"region": Region(20, 30, 0, 3)},
        {"exclude": (Region(0, 9, 0, 9),)},
    ],
)
def test_bad_candidate_settings_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        candidates((10, 10), **kwargs)


# --- patches -------------------------------------------------------------------------------


def test_odd_window_is_centred() -> None:
    image = np.arange(7 * 9, dtype=float).reshape(7, 9)
    out = patches(image, np.array([[4, 3]]), 3)
    assert out.shape == (1, 9) and out.dtype == np.float32
    np.testing.assert_allclose(out[0].reshape(3, 3), _standard(image)[2:5, 3:6], rtol=1e-6)


def test_even_window_has_its_centre_at_index_half_size() -> None:
    image = np.arange(8 * 8, dtype=float).reshape(8, 8)
    window = patches(image, np.array([[5, 4]]), 4)[0].reshape(4, 4)
    std = _standard(image)
    assert window[2, 2] == pytest.approx(std[4, 5], rel=1e-6)
    np.testing.assert_allclose(window, std[2:6, 3:7], rtol=1e-6)  # rows y-2..y+1


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 16])
def test_every_position_gets_a_window_centred_on_it(size: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(7, 5))
    pos = candidates(image.shape)
    out = patches(image, pos, size)
    assert out.shape == (len(pos), size * size)  # nothing dropped at the borders
    centre = out.reshape(-1, size, size)[:, size // 2, size // 2]
    np.testing.assert_allclose(centre, _standard(image)[pos[:, 1], pos[:, 0]], rtol=1e-5)


def test_borders_are_reflected_without_repeating_the_edge() -> None:
    image = np.arange(16, dtype=float).reshape(4, 4)
    window = patches(image, np.array([[0, 0]]), 3)[0].reshape(3, 3)
    std = _standard(image)
    expected = std[[1, 0, 1]][:, [1, 0, 1]]
    np.testing.assert_allclose(window, expected, rtol=1e-6)


def test_normalisation_is_global_and_affine_invariant() -> None:
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(12, 12))
    pos = candidates(image.shape)
    a, b = patches(image, pos, 5), patches(3.0 * image + 100.0, pos, 5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # One standardisation for the whole image: dim and bright regions keep their contrast.
    centre = a.reshape(-1, 5, 5)[:, 2, 2]
    assert centre.mean() == pytest.approx(0.0, abs=1e-6)
    assert centre.std() == pytest.approx(1.0, rel=1e-5)
    assert not np.any(patches(np.full((4, 4), 7.0), pos[:4], 3))  # constant image -> zeros


def test_batches_match_the_full_array_and_respect_the_batch_size() -> None:
    rng = np.random.default_rng(2)
    image = rng.normal(size=(20, 30))
    pos = candidates(image.shape, stride_px=3)
    full = patches(image, pos, 6)
    starts, blocks = zip(*iter_patch_batches(image, pos, 6, batch=7), strict=True)
    assert all(len(b) <= 7 for b in blocks)
    assert list(starts) == list(range(0, len(pos), 7))
    np.testing.assert_array_equal(np.concatenate(blocks), full)


@pytest.mark.parametrize(
    ("image", "positions", "size"),
    [
        (np.zeros(5), np.array([[0, 0]]), 3),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([[0, 0]]), 3),
        (np.zeros((4, 4)), np.array([[4, 0]]), 3),
        (np.zeros((4, 4)), np.array([[0, -1]]), 3),
        (np.zeros((4, 4)), np.array([[0.5, 1.0]]), 3),
        (np.zeros((4, 4)), np.array([0, 1]), 3),
        (np.zeros((4, 4)), np.array([[0, 1]]), 0),
    ],
)
def test_bad_patch_input_is_a_clear_error(image, positions, size) -> None:
    with pytest.raises(ValueError):
        patches(image, positions, size)
    with pytest.raises(ValueError):  # eagerly, not on the first next()
        iter_patch_batches(image, positions, size)


def test_256x256_candidates_fit_in_the_output_plus_one_batch() -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(size=(256, 256)).astype(np.float32)
    pos = candidates(image.shape)
    assert len(pos) == 65_536
    output = 65_536 * 16 * 16 * 4  # 64 MiB of float32
    batch_bytes = 4096 * 16 * 16 * 4
    tracemalloc.start()
    try:
        for _, block in iter_patch_batches(image, pos, 16, batch=4096):
            assert block.shape == (4096, 256)
        _, streaming_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = patches(image, pos, 16, batch=4096)
        _, full_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (65_536, 256)
    assert streaming_peak < 4 * batch_bytes  # never the whole patch matrix
    assert full_peak < output + 4 * batch_bytes


# --- survey_to_grid ------------------------------------------------------------------------


def test_integer_factor_is_a_block_mean() -> None:
    survey = np.arange(6 * 8, dtype=float).reshape(6, 8)
    grid = survey_to_grid(survey, (3, 2))
    expected = survey.reshape(3, 2, 2, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(grid, expected, rtol=1e-6)
    assert grid.dtype == np.float32


def test_non_integer_downsampling_is_area_weighted() -> None:
    rng = np.random.default_rng(4)
    survey = rng.uniform(size=(10, 10))
    grid = survey_to_grid(survey, (4, 4))
    assert grid.mean() == pytest.approx(survey.mean(), rel=1e-6)  # area-average keeps it
    # First output row covers survey rows [0, 2.5): weights 1, 1, 0.5.
    row_weights = np.array([1.0, 1.0, 0.5]) / 2.5
    expected = row_weights @ survey[:3, :3] @ row_weights
    assert grid[0, 0] == pytest.approx(expected, rel=1e-6)


def test_same_shape_is_identity_and_upsampling_interpolates() -> None:
    survey = np.arange(12, dtype=float).reshape(3, 4)
    np.testing.assert_allclose(survey_to_grid(survey, (3, 4)), survey)
    up = survey_to_grid(np.array([[0.0, 1.0], [2.0, 3.0]]), (4, 4))
    np.testing.assert_allclose(up[0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(up[:, 0], [0.0, 0.5, 1.5, 2.0])
    np.testing.assert_allclose(survey_to_grid(np.full((3, 5), 2.0), (7, 2)), 2.0, rtol=1e-6)


@pytest.mark.parametrize("shape", [(0, 3), (3,), (2, -1)])
def test_survey_to_grid_rejects_bad_shapes(shape) -> None:
    with pytest.raises(ValueError):
        survey_to_grid(np.zeros((4, 4)), shape)
