"""Put a survey recorded at another resolution onto the measurement grid.

A real microscope records the HAADF survey finer than the spectrum image (SciFiReaders:
32 x 32 HAADF pixels per spectrum pixel). When the sizes are whole multiples the survey is
block-averaged, which is exactly what each spectrum pixel integrated over; otherwise it is
area-resampled. Both must cover the same field of view: a different aspect ratio is an
error, because it means the images show different regions.
"""

from __future__ import annotations

import numpy as np

ASPECT_TOLERANCE = 0.05


def resample_to_grid(image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D survey onto a (height, width) grid over the same field of view.

    Raises:
        ValueError: the image is not 2-D, or its aspect ratio differs from the grid's.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"survey must be a 2-D image, got shape {image.shape}")
    h, w = image.shape
    gh, gw = int(grid[0]), int(grid[1])
    if (h, w) == (gh, gw):
        return image
    aspect_image, aspect_grid = h / w, gh / gw
    if abs(aspect_image / aspect_grid - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(
            f"survey {h}x{w} and measurement grid {gh}x{gw} have different aspect ratios; "
            "they must cover the same field of view"
        )
    if h % gh == 0 and w % gw == 0:
        return (
            image.reshape(gh, h // gh, gw, w // gw)
            .mean(axis=(1, 3), dtype=np.float64)
            .astype(np.float32)
        )
    from skimage.transform import resize

    out = resize(
        image, (gh, gw), order=1, anti_aliasing=gh < h, preserve_range=True, mode="reflect"
    )
    return np.asarray(out, dtype=np.float32)
