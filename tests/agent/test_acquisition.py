"""Acquisition functions against values worked out by hand, and the selection rule."""

from __future__ import annotations

import numpy as np
import pytest

from dkl.agent.acquisition import (
    acquire,
    expected_improvement,
    neighbourhood_penalty,
    probability_of_improvement,
    select_next,
    upper_confidence_bound,
)

# Hand-computed with Phi(z) = (1 + erf(z / sqrt 2)) / 2, phi(z) = exp(-z^2 / 2) / sqrt(2 pi):
# I = 0.2, sigma = 0.5: z = 0.4, Phi = 0.6554217416, phi = 0.3682701403,
#   EI = 0.2 * 0.6554217416 + 0.5 * 0.3682701403 = 0.3152194185
# I = -0.3, sigma = 0.2: z = -1.5, Phi = 0.0668072013, EI = 0.0058613588
# I = 0, sigma = 1: EI = phi(0) = 0.3989422804, PI = 0.5
EI_02_05 = 0.3152194185
EI_M03_02 = 0.00586135875


def test_expected_improvement_maximise():
    ei = expected_improvement([1.0, 0.5, 2.0], [0.5, 0.2, 1.0], y_best=0.8, xi=0.0)
    np.testing.assert_allclose(ei[:2], [EI_02_05, EI_M03_02], rtol=1e-8)
    # mu = 2.0, sigma = 1: I = 1.2, z = 1.2 -> 1.2 * 0.8849303298 + 0.1941860550
    assert ei[2] == pytest.approx(1.2 * 0.8849303298 + 0.1941860550, rel=1e-9)


def test_expected_improvement_minimise_uses_the_sign_and_xi():
    # minimise, y_best = 1.3, xi = 0.1, mu = 1.0: I = 1.3 - 1.0 - 0.1 = 0.2
    ei = expected_improvement([1.0], [0.5], y_best=1.3, maximize=False, xi=0.1)
    assert ei[0] == pytest.approx(EI_02_05, rel=1e-9)
    # the same numbers maximised: I = 1.0 - 1.3 - 0.1 = -0.4, z = -0.8
    assert expected_improvement([1.0], [0.5], 1.3, True, 0.1)[0] == pytest.approx(
        -0.4 * 0.2118553986 + 0.5 * 0.2896915528, rel=1e-8)


def test_zero_std_gives_the_deterministic_limits():
    ei = expected_improvement([1.0, 0.5], [0.0, 0.0], y_best=0.8, xi=0.0)
    np.testing.assert_allclose(ei, [0.2, 0.0])
    pi = probability_of_improvement([1.0, 0.5], [0.0, 0.0], y_best=0.8, xi=0.0)
    np.testing.assert_array_equal(pi, [1.0, 0.0])


def test_probability_of_improvement():
    pi = probability_of_improvement([1.0, 0.5, 0.8], [0.5, 0.2, 1.0], y_best=0.8, xi=0.0)
    np.testing.assert_allclose(pi, [0.6554217416, 0.0668072013, 0.5], rtol=1e-8)
    pi_min = probability_of_improvement([1.0], [0.5], 1.3, maximize=False, xi=0.1)
    assert pi_min[0] == pytest.approx(0.6554217416, rel=1e-9)


def test_ucb_uses_sqrt_beta_and_sign():
    np.testing.assert_allclose(upper_confidence_bound([1.0, 0.0], [0.5, 2.0], beta=4.0),
                               [2.0, 4.0])
    np.testing.assert_allclose(
        upper_confidence_bound([1.0, 0.0], [0.5, 2.0], beta=9.0, maximize=False),
        [-1.0 + 1.5, 6.0])
    with pytest.raises(ValueError):
        upper_confidence_bound([1.0], [1.0], beta=-1.0)


def test_acquire_dispatches_by_name():
    mu, sd = np.array([1.0, 0.5]), np.array([0.5, 0.2])
    np.testing.assert_allclose(acquire("EI", mu, sd, y_best=0.8, xi=0.0), [EI_02_05, EI_M03_02],
                               rtol=1e-8)
    np.testing.assert_allclose(acquire("ucb", mu, sd, beta=1.0), mu + sd)
    np.testing.assert_array_equal(acquire("uncertainty", mu, sd), sd)
    np.testing.assert_array_equal(acquire("thompson", mu, sd, sample=[3.0, -1.0],
                                          maximize=False), [-3.0, 1.0])
    drawn = acquire("thompson", mu, sd, rng=np.random.default_rng(0),
                    sampler=lambda r: r.normal(size=2))
    np.testing.assert_array_equal(drawn, np.random.default_rng(0).normal(size=2))
    r1 = acquire("random", mu, sd, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(r1, np.random.default_rng(5).random(2))
    with pytest.raises(ValueError, match="y_best"):
        acquire("ei", mu, sd)
    with pytest.raises(ValueError, match="unknown acquisition"):
        acquire("eii", mu, sd, y_best=0.0)
    with pytest.raises(ValueError, match="rng"):
        acquire("random", mu, sd)
    with pytest.raises(ValueError, match="shapes"):
        acquire("ucb", mu, sd[:1])


def test_select_next_never_picks_a_measured_point():
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = rng.normal(size=30)
        measured = rng.random(30) < 0.7
        measured[rng.integers(30)] = False
        pick = select_next(scores, measured)
        assert not measured[pick]
        assert scores[pick] == scores[~measured].max()


def test_select_next_ignores_nan_and_rejects_full_grids():
    assert select_next([np.nan, 1.0, 5.0], [False, False, True]) == 1
    assert select_next([np.nan, np.nan], [True, False]) == 1
    with pytest.raises(ValueError, match="every candidate"):
        select_next([1.0, 2.0], [True, True])
    with pytest.raises(ValueError, match="differ"):
        select_next([1.0, 2.0], [True])


def test_neighbourhood_penalty_values():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    f = neighbourhood_penalty(pos, [[0.0, 0.0]], radius=1.0)
    np.testing.assert_allclose(f, [0.0, 1.0 - np.exp(-0.5), 1.0 - np.exp(-50.0)])


def test_penalty_moves_the_pick_away_from_recent_positions():
    ys, xs = np.mgrid[0:10, 0:10]
    positions = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    # a smooth bump peaking at (5, 5): UCB-like scores that would stick there
    scores = -((positions - 5.0) ** 2).sum(1)
    measured = np.zeros(100, bool)
    measured[55] = True  # (5, 5) itself
    plain = select_next(scores, measured)
    assert np.abs(positions[plain] - 5.0).sum() == 1  # a neighbour of the measured peak
    recent = [positions[55], positions[plain]]
    moved = select_next(scores, measured, positions=positions, recent=recent, radius=2.0)
    assert not measured[moved]
    assert np.min(np.linalg.norm(positions[moved] - np.array(recent), axis=1)) >= 2.0
    # without recent positions the penalty is a no-op
    assert select_next(scores, measured, positions=positions, recent=[], radius=2.0) == plain
    with pytest.raises(ValueError, match="positions"):
        select_next(scores, measured, recent=recent, radius=2.0)
