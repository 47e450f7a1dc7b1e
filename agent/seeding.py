"""The plan's initial points, before any model exists: random, a grid, or given positions."""

from __future__ import annotations

import numpy as np

from dkl.dsl.plan import Seeding


def seed_indices(seeding: Seeding, positions: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Indices into `positions` (N, 2 of x, y) of the seed points, in measurement order.

    `grid n` spreads n points evenly over the candidates' bounding box (nearest candidate
    to each node of a near-square lattice); `at` maps each given point to the nearest
    candidate. Duplicates are dropped; never more points than candidates.
    """
    n_cand = len(positions)
    if seeding.kind == "random":
        n = min(seeding.n, n_cand)
        return [int(i) for i in rng.choice(n_cand, size=n, replace=False)]
    if seeding.kind == "grid":
        lo, hi = positions.min(axis=0), positions.max(axis=0)
        cols = max(1, int(np.ceil(np.sqrt(seeding.n * (hi[0] - lo[0] + 1) /
                                          max(hi[1] - lo[1] + 1, 1)))))
        rows = max(1, int(np.ceil(seeding.n / cols)))
        xs = np.linspace(lo[0], hi[0], cols + 2)[1:-1]
        ys = np.linspace(lo[1], hi[1], rows + 2)[1:-1]
        targets = [(x, y) for y in ys for x in xs][: seeding.n]
    else:
        targets = list(seeding.points)
    chosen: list[int] = []
    for x, y in targets:
        d2 = (positions[:, 0] - x) ** 2 + (positions[:, 1] - y) ** 2
        i = int(np.argmin(d2))
        if i not in chosen:
            chosen.append(i)
    return chosen[:n_cand]
