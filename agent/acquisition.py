"""Acquisition functions: which candidate to measure next, from the predictive mean and std.

Pure numpy functions of the posterior mean `mu` and standard deviation `sigma` (arrays over
candidates), so the maths is testable with hand-made arrays and independent of the model.
Every score is "larger is better"; minimisation is handled by a sign, never by the caller.

With `s = +1` to maximise and `s = -1` to minimise, `y*` the best *observed* value
(not the best predicted mean), improvement `I = s(mu - y*) - xi` and `z = I / sigma`:

- EI (expected improvement): `I·Phi(z) + sigma·phi(z)`; at sigma = 0 it is `max(I, 0)`.
- PI (probability of improvement): `Phi(z)`; at sigma = 0 it is 1 if I > 0 else 0.
- UCB (upper confidence bound): `s·mu + sqrt(beta)·sigma` (beta is the variance multiplier;
  for minimisation this is the negated lower confidence bound).
- uncertainty: `sigma`.
- Thompson: `s·f` for one posterior draw `f` (the model's `thompson_sample`).
- random: i.i.d. uniform scores from the given generator.

`select_next` takes the argmax over *unmeasured* candidates only, optionally after a
Gaussian down-weighting around the last few measured positions (the fix for UCB that keeps
sampling one neighbourhood).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import ndtr

__all__ = [
    "ACQUISITIONS",
    "acquire",
    "expected_improvement",
    "neighbourhood_penalty",
    "probability_of_improvement",
    "random_scores",
    "select_next",
    "thompson_scores",
    "uncertainty",
    "upper_confidence_bound",
]

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _as_pair(mean: Any, std: Any) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mean, dtype=np.float64)
    sigma = np.asarray(std, dtype=np.float64)
    if mu.shape != sigma.shape:
        raise ValueError(f"mean and std shapes differ: {mu.shape} vs {sigma.shape}")
    if np.any(sigma < 0):
        raise ValueError("std must be >= 0")
    return mu, sigma


def _improvement(mu: np.ndarray, y_best: float, maximize: bool, xi: float) -> np.ndarray:
    if not np.isfinite(y_best):
        raise ValueError(f"incumbent y_best must be finite, got {y_best}")
    sign = 1.0 if maximize else -1.0
    return sign * (mu - float(y_best)) - float(xi)


def expected_improvement(mean: Any, std: Any, y_best: float, maximize: bool = True,
                         xi: float = 0.01) -> np.ndarray:
    """EI = I·Phi(I/sigma) + sigma·phi(I/sigma), I = s(mu - y_best) - xi (see module doc)."""
    mu, sigma = _as_pair(mean, std)
    imp = _improvement(mu, y_best, maximize, xi)
    pos = sigma > 0
    safe = np.where(pos, sigma, 1.0)
    z = imp / safe
    ei = imp * ndtr(z) + safe * np.exp(-0.5 * z * z) / _SQRT_2PI
    return np.where(pos, np.maximum(ei, 0.0), np.maximum(imp, 0.0))


def probability_of_improvement(mean: Any, std: Any, y_best: float, maximize: bool = True,
                               xi: float = 0.01) -> np.ndarray:
    """PI = Phi((s(mu - y_best) - xi) / sigma)."""
    mu, sigma = _as_pair(mean, std)
    imp = _improvement(mu, y_best, maximize, xi)
    pos = sigma > 0
    return np.where(pos, ndtr(imp / np.where(pos, sigma, 1.0)), (imp > 0).astype(np.float64))


def upper_confidence_bound(mean: Any, std: Any, beta: float = 4.0,
                           maximize: bool = True) -> np.ndarray:
    """UCB = s·mu + sqrt(beta)·sigma (beta multiplies the variance, not the std)."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    mu, sigma = _as_pair(mean, std)
    return (1.0 if maximize else -1.0) * mu + np.sqrt(float(beta)) * sigma


def uncertainty(mean: Any, std: Any) -> np.ndarray:
    """Pure exploration: the predictive standard deviation."""
    return _as_pair(mean, std)[1].copy()


def thompson_scores(sample: Any, maximize: bool = True) -> np.ndarray:
    """Score of one posterior draw: the draw itself (negated when minimising)."""
    f = np.asarray(sample, dtype=np.float64)
    return f if maximize else -f


def random_scores(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores: the random-sampling baseline."""
    return rng.random(int(n))


ACQUISITIONS = ("ei", "pi", "ucb", "uncertainty", "thompson", "random")


def acquire(name: str, mean: Any, std: Any, y_best: float | None = None,
            maximize: bool = True, xi: float = 0.01, beta: float = 4.0,
            rng: np.random.Generator | None = None,
            sample: Any = None, sampler: Callable[[np.random.Generator], Any] | None = None,
            ) -> np.ndarray:
    """Scores of every candidate for the plan's acquisition function (larger is better).

    Args:
        name: one of `ei`, `pi`, `ucb`, `uncertainty`, `thompson`, `random` (any case).
        mean, std: predictive mean and standard deviation over candidates (units of y).
        y_best: best observed value so far (EI and PI).
        maximize: the plan's direction.
        xi: EI/PI margin; beta: UCB variance multiplier.
        rng: generator for `random` and for `sampler`.
        sample: one posterior draw over the candidates (Thompson), or
        sampler: a callable `rng -> draw`, e.g. `lambda r: model.thompson_sample(X, r)`.

    Raises:
        ValueError: unknown name or a missing argument the function needs.
    """
    key = name.lower()
    if key in ("ei", "pi") and y_best is None:
        raise ValueError(f"{key} needs the best observed value y_best")
    if key == "ei":
        return expected_improvement(mean, std, float(y_best), maximize, xi)  # type: ignore[arg-type]
    if key == "pi":
        return probability_of_improvement(mean, std, float(y_best), maximize, xi)  # type: ignore[arg-type]
    if key == "ucb":
        return upper_confidence_bound(mean, std, beta, maximize)
    if key == "uncertainty":
        return uncertainty(mean, std)
    if key == "thompson":
        if sample is None:
            if sampler is None or rng is None:
                raise ValueError("thompson needs a posterior sample, or a sampler and an rng")
            sample = sampler(rng)
        return thompson_scores(sample, maximize)
    if key == "random":
        if rng is None:
            raise ValueError("random acquisition needs an rng")
        return random_scores(np.size(mean), rng)
    raise ValueError(f"unknown acquisition {name!r}; choose one of {', '.join(ACQUISITIONS)}")


def neighbourhood_penalty(positions: Any, recent: Any, radius: float) -> np.ndarray:
    """Multiplicative factor in [0, 1]: prod_j (1 - exp(-|p - r_j|^2 / (2 radius^2))).

    0 at a recently measured position, about 1 a few radii away.
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    rec = np.asarray(recent, dtype=np.float64).reshape(-1, 2)
    factor = np.ones(len(pos))
    for r in rec:
        d2 = np.sum((pos - r) ** 2, axis=1)
        factor *= 1.0 - np.exp(-d2 / (2.0 * radius * radius))
    return factor


def select_next(scores: Any, measured_mask: Any, positions: Any = None, recent: Any = None,
                radius: float | None = None) -> int:
    """Index of the best-scoring candidate that has not been measured.

    NaN scores never win. With `positions` (N, 2), `recent` (k, 2: the last k measured
    positions) and `radius`, scores of unmeasured candidates are first rescaled to [0, 1]
    and multiplied by `neighbourhood_penalty`, so the pick moves away from where the
    instrument has just been.

    Raises:
        ValueError: shapes differ, or every candidate has been measured.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    measured = np.asarray(measured_mask, dtype=bool).reshape(-1)
    if s.shape != measured.shape:
        raise ValueError(f"scores ({s.size}) and measured_mask ({measured.size}) differ in size")
    open_ = ~measured
    if not open_.any():
        raise ValueError("every candidate has been measured")
    s = np.where(open_ & np.isfinite(s), s, -np.inf)
    use_penalty = radius is not None and recent is not None and np.size(recent) > 0
    if use_penalty:
        if positions is None:
            raise ValueError("the neighbourhood penalty needs candidate positions")
        finite = np.isfinite(s)
        if finite.any():
            lo, hi = s[finite].min(), s[finite].max()
            unit = np.zeros_like(s)
            unit[finite] = (s[finite] - lo) / (hi - lo) if hi > lo else 1.0
            factor = neighbourhood_penalty(positions, recent, radius)
            # 1e-9·unit keeps the raw order where the penalty zeroes every candidate
            s = np.where(finite, unit * factor + 1e-9 * unit, -np.inf)
    if np.all(np.isneginf(s)):
        return int(np.flatnonzero(open_)[0])
    return int(np.argmax(s))
