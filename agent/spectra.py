"""Spectrum physics for the scalarizers, vectorised over a stack of spectra `(N, E)`.

Done as a spectroscopist would on noisy counts: peaks are found by prominence on a lightly
smoothed spectrum against a locally estimated noise level (so shot noise on a strong peak
does not split it into several), positions and heights are refined to sub-channel by a
parabola through the top three channels, widths are interpolated at half maximum, and a
core-loss edge is integrated over a power-law background fitted in log-log.

Every function is per spectrum (no coupling across rows) and returns NaN where the
quantity is undefined; `dkl.agent.scalarize` turns NaN into a typed failure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal import find_peaks, peak_prominences, peak_widths, savgol_coeffs

__all__ = [
    "PROMINENCE_FLOOR",
    "PROMINENCE_SIGMAS",
    "Peaks",
    "edge_integral",
    "find_all_peaks",
    "noise_sigma",
    "smooth",
    "window_peak",
]

#: A peak must rise this many noise standard deviations (of the smoothed spectrum) above
#: the higher of its two neighbouring minima. The prominence of the tallest noise bump in
#: a spectrum grows with its length (it is about the range of the noise): on pure Poisson
#: noise, 99 % of 300- to 2048-channel spectra have none above 8-9.5, so 10 keeps false
#: peaks rare while a peak ~7 raw-noise sigmas tall is still found.
PROMINENCE_SIGMAS = 10.0
#: ... and at least this fraction of the spectrum's (smoothed) dynamic range, so exact,
#: noise-free data do not count rounding ripples as peaks.
PROMINENCE_FLOOR = 2e-3
_SMOOTH_WINDOW = 7  # Savitzky-Golay, quadratic: keeps peak heights, ~0.58x the noise
_SMOOTH_ORDER = 2
_NOISE_BLOCK = 16  # channels per local noise estimate


@dataclass(frozen=True)
class Peaks:
    """The peaks found in one spectrum, from low to high energy."""

    energy: np.ndarray  # eV, sub-channel
    height: np.ndarray  # smoothed intensity at the refined top
    fwhm: np.ndarray  # eV, at half height above the peak's base; NaN if undefined


def smooth(stack: np.ndarray) -> np.ndarray:
    """Savitzky-Golay smoothing (7 channels, quadratic) along the energy axis.

    The ends are mirrored (`mode="mirror"`), which is a fast convolution and cannot create
    a peak at an end channel (`find_peaks` never reports those anyway).
    """
    kernel = _smooth_kernel(stack.shape[-1])
    if len(kernel) == 1:
        return np.array(stack, dtype=np.float64)
    return convolve1d(np.asarray(stack, dtype=np.float64), kernel, axis=-1, mode="mirror")


def _smooth_window(n: int) -> int:
    return min(_SMOOTH_WINDOW, n if n % 2 else n - 1)


@lru_cache(maxsize=64)
def _smooth_kernel(n: int) -> np.ndarray:
    window = _smooth_window(n)
    if window <= _SMOOTH_ORDER:
        return np.ones(1)
    return savgol_coeffs(window, _SMOOTH_ORDER)  # symmetric: convolution = correlation


def _smooth_gain(n: int) -> float:
    """Factor by which `smooth` reduces white noise (the L2 norm of its kernel)."""
    return float(np.linalg.norm(_smooth_kernel(n)))


def noise_sigma(stack: np.ndarray) -> np.ndarray:
    """Per-channel noise standard deviation of each raw spectrum, `(N, E)`.

    From the second difference (which cancels any locally linear signal): in blocks of 16
    channels, sigma = 1.4826 * MAD / sqrt(6) (the mean absolute deviation when the MAD is
    0, as for sparse counts), then each channel takes the largest of its own and the
    neighbouring blocks, so shot noise on top of a strong peak is not underestimated.
    """
    count, n = stack.shape
    if n < 5:
        return np.zeros_like(stack)
    d2 = stack[:, 2:] - 2.0 * stack[:, 1:-1] + stack[:, :-2]
    block = min(_NOISE_BLOCK, d2.shape[1])
    nblocks = d2.shape[1] // block  # the last < 16 values only inherit the last block's
    blocks = d2[:, : nblocks * block].reshape(count, nblocks, block)
    dev = np.abs(blocks - np.median(blocks, axis=2, keepdims=True))
    mad = np.median(dev, axis=2)
    sig = np.where(mad > 0, 1.4826 * mad, 1.2533 * dev.mean(axis=2)) / np.sqrt(6.0)
    padded = np.pad(sig, ((0, 0), (1, 1)), mode="edge")
    sig = np.maximum(np.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    block_of = np.clip((np.arange(n) - 1) // block, 0, nblocks - 1)
    return sig[:, block_of]


def find_all_peaks(stack: np.ndarray, energy: np.ndarray) -> list[Peaks]:
    """Peaks of every spectrum in `stack` (see `PROMINENCE_SIGMAS` and `PROMINENCE_FLOOR`)."""
    smoothed = smooth(stack)
    sigma = noise_sigma(stack) * _smooth_gain(stack.shape[-1])
    span = smoothed.max(axis=1) - smoothed.min(axis=1)
    channels = np.arange(stack.shape[-1], dtype=float)
    tops, lefts, rights, counts = [], [], [], []
    for row, row_sigma, row_span in zip(smoothed, sigma, span, strict=True):
        threshold = np.maximum(PROMINENCE_SIGMAS * row_sigma, PROMINENCE_FLOOR * row_span)
        threshold = np.maximum(threshold, np.finfo(float).tiny)
        idx, props = find_peaks(row, prominence=threshold)
        _, _, left, right = peak_widths(
            row, idx, rel_height=0.5,
            prominence_data=(props["prominences"], props["left_bases"], props["right_bases"]),
        )
        tops.append(idx)
        lefts.append(left)
        rights.append(right)
        counts.append(len(idx))
    rows = np.repeat(np.arange(len(stack)), counts)
    top, left, right = (np.concatenate(a) if a else np.zeros(0) for a in (tops, lefts, rights))
    pos, height = _refine_tops(smoothed, rows, top.astype(int), left, right)
    peak_energy = np.interp(pos, channels, energy)
    fwhm = np.interp(right, channels, energy) - np.interp(left, channels, energy)
    splits = np.cumsum(counts)[:-1]
    return [Peaks(e, h, w) for e, h, w in zip(np.split(peak_energy, splits),
                                              np.split(height, splits),
                                              np.split(fwhm, splits), strict=True)]


def window_peak(
    smoothed: np.ndarray, energy: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Highest point of each smoothed spectrum inside `mask`: (height, energy, FWHM).

    When that point is a local maximum of the whole spectrum it is refined like a found
    peak and its FWHM measured; otherwise (a window edge on a flank) it is taken as is and
    the FWHM is NaN. `mask` must select at least one channel.
    """
    inside = np.flatnonzero(mask)
    top = inside[np.argmax(smoothed[:, inside], axis=1)]
    rows = np.arange(len(top))
    channels = np.arange(smoothed.shape[1], dtype=float)
    left, right = np.full(len(top), np.nan), np.full(len(top), np.nan)
    for i, (row, t) in enumerate(zip(smoothed, top, strict=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # prominence 0 (not a peak) is handled below
            prom, lbase, rbase = peak_prominences(row, [t])
        if prom[0] > 0:
            _, _, lo, hi = peak_widths(
                row, [t], rel_height=0.5, prominence_data=(prom, lbase, rbase))
            left[i], right[i] = lo[0], hi[0]
    peak = ~np.isnan(left)
    pos, height = top.astype(float), smoothed[rows, top]
    pos[peak], height[peak] = _refine_tops(smoothed, rows[peak], top[peak], left[peak], right[peak])
    fwhm = np.where(peak, np.interp(right, channels, energy) - np.interp(left, channels, energy),
                    np.nan)
    return height, np.interp(pos, channels, energy), fwhm


def edge_integral(
    stack: np.ndarray, energy: np.ndarray, signal: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Background-subtracted integral over the `signal` channels (intensity x eV).

    The background `A * E**-r` is fitted by least squares to `log(I)` against `log(E)`
    over the `background` channels with positive intensity (at least 3 needed),
    extrapolated under the signal window, and `sum((I - B) * dE)` is taken with the
    channel widths `dE` (`numpy.gradient` of the energy axis). NaN where the fit fails.
    """
    e_bg, e_sig = energy[background], energy[signal]
    if np.any(e_bg <= 0) or np.any(e_sig <= 0):
        return np.full(len(stack), np.nan)
    y = stack[:, background]
    valid = y > 0
    w = valid.astype(float)
    x = np.log(e_bg)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logy = np.where(valid, np.log(np.where(valid, y, 1.0)), 0.0)
        sw, sx, sy = w.sum(1), (w * x).sum(1), (w * logy).sum(1)
        sxx, sxy = (w * x * x).sum(1), (w * x * logy).sum(1)
        det = sw * sxx - sx * sx
        slope = (sw * sxy - sx * sy) / det
        intercept = (sy - slope * sx) / sw
        bg = np.exp(intercept[:, None] + slope[:, None] * np.log(e_sig)[None, :])
        widths = np.gradient(energy)[signal] if len(energy) > 1 else np.ones(1)
        total = ((stack[:, signal] - bg) * widths[None, :]).sum(1)
    ok = (sw >= 3) & (det > 0) & np.isfinite(total)
    return np.where(ok, total, np.nan)


def _refine_tops(
    smoothed: np.ndarray, rows: np.ndarray, top: np.ndarray, left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-channel position and height of the maxima at channels `top` of spectra `rows`.

    Position: vertex of a least-squares parabola through the channels between the
    half-height crossings `left .. right` (fractional channels; at least the three around
    the top, at most 64 on either side), which uses the whole upper half of the peak and
    is unbiased for symmetric shapes; kept at `top` if the fit has no maximum inside that
    range. Height: the smoothed spectrum interpolated quadratically at that position.
    All peaks at once: one masked fit per peak, solved as a batch of 3 x 3 systems.
    """
    n = smoothed.shape[1]
    if len(top) == 0:
        return np.zeros(0), np.zeros(0)
    if n < 3:
        return top.astype(float), smoothed[rows, top].astype(float)
    lo = np.clip(np.minimum(np.ceil(left).astype(int), top - 1), np.maximum(top - 64, 0), None)
    hi = np.clip(np.maximum(np.floor(right).astype(int), top + 1), None,
                 np.minimum(top + 64, n - 1))
    reach = int(max((top - lo).max(), (hi - top).max()))
    x = np.arange(-reach, reach + 1, dtype=float)
    chan = top[:, None] + x.astype(int)[None, :]
    w = ((chan >= lo[:, None]) & (chan <= hi[:, None])).astype(float)
    y = smoothed[rows[:, None], np.clip(chan, 0, n - 1)] * w
    moments = [(w * x**k).sum(axis=1) for k in range(5)]
    normal = np.stack([np.stack(moments[i : i + 3][::-1], axis=-1) for i in (2, 1, 0)], axis=1)
    rhs = np.stack([(y * x**2).sum(1), (y * x).sum(1), y.sum(1)], axis=-1)
    solvable = np.abs(np.linalg.det(normal)) > 1e-12
    coef = np.zeros((len(top), 3))
    if solvable.any():
        coef[solvable] = np.linalg.solve(normal[solvable], rhs[solvable][..., None])[..., 0]
    a, b = coef[:, 0], coef[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = top - b / (2.0 * a)
    ok = solvable & (a < 0) & (vertex >= lo) & (vertex <= hi)
    pos = np.where(ok, vertex, top.astype(float))
    i = np.clip(np.rint(pos).astype(int), 1, n - 2)
    u = pos - i
    ym, y0, yp = smoothed[rows, i - 1], smoothed[rows, i], smoothed[rows, i + 1]
    return pos, y0 + 0.5 * u * (yp - ym) + 0.5 * u * u * (yp - 2.0 * y0 + ym)
