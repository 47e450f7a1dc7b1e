"""How likely a candidate's measurement is to give a usable scalar, from where earlier ones failed.

A failed point (no peak, zero denominator, NaN data) never trains the model, so without this
the model stays as uncertain over vacuum or a hole as before the beam went there, and an
uncertainty-seeking acquisition keeps returning to such places. The agent therefore weighs
every acquisition score by an estimate of the probability of success: among the `k` measured
candidates nearest in patch space, `(successes + 1) / (k + 2)` (Laplace's rule, so a
candidate is down-weighted at most 6-fold, never ruled out). Neighbours are kept per
candidate and updated as points arrive, so a new point costs one pass over the candidates
(O(N·d)), not a fresh N × n distance matrix.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SuccessEstimate", "weigh_by_success"]

#: Measured neighbours that vote on a candidate's chance of success.
NEIGHBOURS = 5
#: Beta(a, a) prior on the local success rate (a = 1: Laplace's rule of succession).
PRIOR = 1.0


class SuccessEstimate:
    """Success probability of every candidate from its nearest measured neighbours."""

    def __init__(self, features: np.ndarray, k: int = NEIGHBOURS, chunk: int = 64) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.features = np.asarray(features, dtype=np.float32)
        self.k = int(k)
        self.chunk = int(chunk)
        self._sq = np.einsum("ij,ij->i", self.features, self.features)
        n = len(self.features)
        self._dist = np.full((n, self.k), np.inf, dtype=np.float32)  # sorted per row
        self._ok = np.zeros((n, self.k), dtype=bool)
        self._seen: set[int] = set()

    @property
    def measured(self) -> int:
        return len(self._seen)

    def add(self, indices: np.ndarray, ok: np.ndarray) -> None:
        """Record measured candidates and whether each gave a scalar (repeats are ignored)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        ok = np.broadcast_to(np.asarray(ok, dtype=bool), indices.shape)
        fresh: list[tuple[int, bool]] = []
        for i, o in zip(indices.tolist(), ok.tolist()):
            if i not in self._seen:
                self._seen.add(i)
                fresh.append((i, o))
        for start in range(0, len(fresh), self.chunk):
            block = fresh[start:start + self.chunk]
            idx = np.array([i for i, _ in block], dtype=np.int64)
            lab = np.array([o for _, o in block], dtype=bool)
            d2 = self._sq[:, None] - 2.0 * (self.features @ self.features[idx].T) + self._sq[idx]
            dist = np.concatenate([self._dist, np.maximum(d2, 0.0)], axis=1)
            labels = np.concatenate([self._ok, np.broadcast_to(lab, d2.shape)], axis=1)
            keep = np.argsort(dist, axis=1, kind="stable")[:, : self.k]
            self._dist = np.take_along_axis(dist, keep, axis=1)
            self._ok = np.take_along_axis(labels, keep, axis=1)

    def probability(self) -> np.ndarray:
        """(N,) estimated probability that measuring each candidate gives a scalar."""
        votes = np.isfinite(self._dist)
        successes = (self._ok & votes).sum(axis=1)
        return (successes + PRIOR) / (votes.sum(axis=1) + 2.0 * PRIOR)


def weigh_by_success(scores: np.ndarray, p_success: np.ndarray) -> np.ndarray:
    """Expected score when a failed measurement is worth the least score of any candidate.

    `p·(score − min)`: exact for EI and PI (a failure improves nothing); for scores of any
    sign (UCB, Thompson) the worst candidate sets the zero. NaN scores stay NaN.
    """
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    if not finite.any():
        return s
    return np.asarray(p_success, dtype=np.float64) * (s - s[finite].min())
