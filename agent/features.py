"""Model inputs: candidate positions and the survey patch around each of them.

The deep-kernel GP sees a candidate only through the survey patch around it, so every
candidate must get a patch (reflect-padded at the borders, never dropped) and patches must
be comparable across the image (one standardisation for the whole image, not per patch).
At 256 x 256 candidates of 16 x 16 px the patch matrix alone is 64 MiB of float32, so
windows are strided views of the padded image and are gathered in batches.

Conventions: positions are `(x, y)` grid pixels, x along columns. A window of `size` px
around `(x, y)` covers rows `y - size // 2 .. y - size // 2 + size - 1` (same for columns):
for odd sizes the centre is in the middle, for even sizes the centre pixel sits at index
`size // 2` of the window (one more pixel before it than after it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dkl.dsl.plan import Region

__all__ = ["candidates", "iter_patch_batches", "patches", "survey_to_grid"]


def candidates(
    shape: tuple[int, int],
    patch_px: int = 16,
    stride_px: int = 1,
    region: Region | None = None,
    exclude: Sequence[Region] = (),
) -> np.ndarray:
    """List the grid positions the agent may measure, as the plan's stride/region/exclude say.

    The lattice starts at the region's first whole pixel (`ceil(x0)`, `ceil(y0)`; the grid
    origin without a region) and steps by `stride_px` in x and y up to the inclusive end.
    The region is clipped to the grid; a candidate inside any (inclusive) `exclude`
    rectangle is removed. `patch_px` removes nothing: patches are reflect-padded.

    Args:
        shape: measurement grid `(height, width)`.
        patch_px: patch size, validated only (the plan's `patch` setting).
        stride_px: lattice step in px (>= 1).
        region: inclusive rectangle in grid px, or None for the whole grid.
        exclude: inclusive rectangles to leave out.

    Returns:
        `(N, 2)` int64 array of `(x, y)`, row-major (y outer, x inner).

    Raises:
        ValueError: bad shape/patch/stride, or no candidate left.

    Example:
        >>> candidates((4, 5), stride_px=2)[:3].tolist()
        [[0, 0], [2, 0], [4, 0]]
    """
    height, width = _grid_shape(shape)
    if int(patch_px) != patch_px or patch_px < 1:
        raise ValueError(f"patch_px must be a positive integer, got {patch_px!r}")
    if int(stride_px) != stride_px or stride_px < 1:
        raise ValueError(f"stride_px must be a positive integer, got {stride_px!r}")
    stride = int(stride_px)
    if region is None:
        x0, x1, y0, y1 = 0, width - 1, 0, height - 1
    else:
        x0, x1 = max(math.ceil(region.x0), 0), min(math.floor(region.x1), width - 1)
        y0, y1 = max(math.ceil(region.y0), 0), min(math.floor(region.y1), height - 1)
        if x0 > x1 or y0 > y1:
            raise ValueError(f"region {region} does not overlap the {height}x{width} grid")
    xs = np.arange(x0, x1 + 1, stride, dtype=np.int64)
    ys = np.arange(y0, y1 + 1, stride, dtype=np.int64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    keep = np.ones(gx.shape, dtype=bool)
    for box in exclude:
        keep &= ~((gx >= box.x0) & (gx <= box.x1) & (gy >= box.y0) & (gy <= box.y1))
    positions = np.stack([gx[keep], gy[keep]], axis=1)
    if len(positions) == 0:
        raise ValueError("no candidate positions left after region and exclude")
    return positions


def patches(
    image: np.ndarray, positions: np.ndarray, size: int, *, batch: int = 8192
) -> np.ndarray:
    """Cut the standardised `size` x `size` window around every position, flattened.

    The whole image is standardised to zero mean and unit standard deviation before
    cutting (a constant image becomes zeros), so patch contrast is comparable across the
    image; borders are reflect-padded (`numpy.pad(mode="reflect")`, the edge pixel is not
    repeated), so no position is dropped. Peak memory: the result plus one batch.

    Args:
        image: `(H, W)` survey on the measurement grid, finite values.
        positions: `(N, 2)` integer `(x, y)` inside the grid.
        size: window side in px (>= 1); see the module docstring for even sizes.
        batch: positions gathered at a time.

    Returns:
        `(N, size * size)` float32, row-major within each window.

    Raises:
        ValueError: non-2-D or non-finite image, positions outside the grid, bad size.
    """
    img, pos, size, batch = _prepare(image, positions, size, batch)
    out = np.empty((len(pos), size * size), dtype=np.float32)
    for start, block in _batches(img, pos, size, batch):
        out[start : start + len(block)] = block
    return out


def iter_patch_batches(
    image: np.ndarray, positions: np.ndarray, size: int, batch: int = 8192
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(start, patches[start:start + batch])` exactly as `patches` computes them.

    Only one batch of windows is materialised at a time; the windows themselves are a
    `sliding_window_view` of the padded, standardised image (a view, not a copy). Input is
    validated when called, not on the first `next()`.
    """
    img, pos, size, batch = _prepare(image, positions, size, batch)
    return _batches(img, pos, size, batch)


def _prepare(
    image: np.ndarray, positions: np.ndarray, size: int, batch: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    if int(size) != size or size < 1:
        raise ValueError(f"patch size must be a positive integer, got {size!r}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    img = _standardised(image)
    return img, _positions(positions, img.shape), int(size), int(batch)


def _batches(
    img: np.ndarray, pos: np.ndarray, size: int, batch: int
) -> Iterator[tuple[int, np.ndarray]]:
    before = size // 2
    padded = np.pad(img, ((before, size - 1 - before),) * 2, mode="reflect")
    windows = sliding_window_view(padded, (size, size))  # (H, W, size, size) view
    for start in range(0, len(pos), batch):
        chunk = pos[start : start + batch]
        # Window (r, c) of the padded image starts at padded row r = image row r - before.
        yield start, windows[chunk[:, 1], chunk[:, 0]].reshape(len(chunk), size * size)


def survey_to_grid(image: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Resample a survey onto the measurement grid, both covering the same field of view.

    Per axis: when the survey is finer (or equal), each grid pixel is the area-weighted
    mean of the survey pixels it overlaps (exact block means for integer factors, no
    aliasing); when the survey is coarser, values are linearly interpolated between pixel
    centres. Separable, numpy only: `R_y @ image @ R_x.T`.

    Args:
        image: `(h, w)` survey, finite values.
        grid_shape: measurement grid `(H, W)`.

    Returns:
        `(H, W)` float32.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"survey must be a non-empty 2-D image, got shape {img.shape}")
    height, width = _grid_shape(grid_shape)
    rows = _resample_matrix(img.shape[0], height)
    cols = _resample_matrix(img.shape[1], width)
    return (rows @ img @ cols.T).astype(np.float32)


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """`(n_out, n_in)` weights mapping one axis of `n_in` pixels onto `n_out` pixels."""
    if n_out <= n_in:
        # Output pixel j covers [j, j + 1) * n_in / n_out in input-pixel units.
        edges = np.arange(n_out + 1) * (n_in / n_out)
        lo, hi = edges[:-1, None], edges[1:, None]
        cells = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)
    # Upsampling: output centre j maps to input coordinate (j + 0.5) * n_in / n_out - 0.5.
    coord = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    left = np.minimum(np.floor(coord).astype(int), n_in - 1)
    right = np.minimum(left + 1, n_in - 1)
    frac = coord - left
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), left), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), right), frac)
    return weights


def _standardised(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or infinite values")
    std = img.std()
    centred = img - img.mean()
    return (centred / std if std > 0 else centred).astype(np.float32)


def _positions(positions: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (N, 2) of (x, y), got shape {pos.shape}")
    if not np.issubdtype(pos.dtype, np.integer):
        if not np.all(np.isfinite(pos)) or np.any(pos != np.round(pos)):
            raise ValueError("positions must be whole pixels")
        pos = pos.astype(np.int64)
    height, width = shape[0], shape[1]
    bad = (pos[:, 0] < 0) | (pos[:, 0] >= width) | (pos[:, 1] < 0) | (pos[:, 1] >= height)
    if np.any(bad):
        x, y = pos[np.argmax(bad)]
        raise ValueError(f"position ({x}, {y}) is outside the {height}x{width} grid")
    return pos


def _grid_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise ValueError(f"grid shape must be two positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])
