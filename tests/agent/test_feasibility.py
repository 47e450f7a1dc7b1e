"""Success estimate from failed points, and the decider steering the beam away from them."""

from __future__ import annotations

import numpy as np
import pytest

import dkl.agent.decide as decide_module
from dkl.agent.acquisition import acquire, select_next
from dkl.agent.decide import Decider
from dkl.agent.feasibility import PRIOR, SuccessEstimate, weigh_by_success
from dkl.agent.features import candidates, patches
from dkl.dsl import compile_source


def brute_force(features: np.ndarray, measured: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
    d2 = ((features[:, None, :] - features[None, measured, :]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return (ok[nearest].sum(axis=1) + PRIOR) / (nearest.shape[1] + 2.0 * PRIOR)


def test_incremental_neighbours_equal_a_fresh_search() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 7)).astype(np.float32)
    measured = rng.choice(300, 40, replace=False)
    ok = rng.random(40) < 0.6
    est = SuccessEstimate(features, k=5, chunk=8)
    for part in np.array_split(np.arange(40), 6):  # as the points arrive, in uneven batches
        est.add(measured[part], ok[part])
    np.testing.assert_allclose(est.probability(), brute_force(features, measured, ok, 5),
                               rtol=1e-6)
    assert est.measured == 40


def test_laplace_rule_with_few_neighbours_and_repeats() -> None:
    assert PRIOR == 1.0
    features = np.arange(10, dtype=np.float32)[:, None]
    est = SuccessEstimate(features, k=3)
    np.testing.assert_allclose(est.probability(), 0.5)  # nothing measured: no evidence
    est.add(np.array([0]), False)
    np.testing.assert_allclose(est.probability(), 1 / 3)  # one failed vote: (0 + 1) / (1 + 2)
    est.add(np.array([0, 9, 9]), np.array([True, True, True]))  # 0 again, 9 twice: once
    assert est.measured == 2
    p = est.probability()
    assert p[0] == pytest.approx(0.5) and p[9] == pytest.approx(0.5)  # votes: 0 failed, 9 ok
    with pytest.raises(ValueError, match="k must be"):
        SuccessEstimate(features, k=0)


def test_weighing_keeps_ei_zero_shifts_signed_scores_and_keeps_nan() -> None:
    p = np.array([0.2, 0.8, 0.5, 1.0])
    ei = np.array([0.0, 1.0, 2.0, 0.5])
    np.testing.assert_allclose(weigh_by_success(ei, p), [0.0, 0.8, 1.0, 0.5])
    ucb = np.array([-3.0, -1.0, 1.0, np.nan])
    out = weigh_by_success(ucb, p)
    np.testing.assert_allclose(out[:3], [0.0, 1.6, 2.0])
    assert np.isnan(out[3])
    assert np.isnan(weigh_by_success(np.full(3, np.nan), p[:3])).all()


def _half_vacuum(size: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left half vacuum (dark survey, the scalar fails), right half a smooth signal."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    rng = np.random.default_rng(1)
    image = np.where(x < size // 2, 0.05, 1.0 + 0.3 * np.sin(y / 3.0)) + 0.02 * rng.normal(
        size=(size, size))
    positions = candidates(image.shape, 5, 1)
    features = patches(image, positions, 5)
    px, py = positions[:, 0], positions[:, 1]
    truth = np.where(px < size // 2, np.nan, np.sin(py / 3.0) + 0.1 * rng.normal(size=len(px)))
    return positions, features, truth


def _failures(features: np.ndarray, truth: np.ndarray, seed: int, steps: int = 25) -> int:
    plan = compile_source("scalarize sum(1 eV .. 2 eV); acquire EI; seed random 6; "
                          "model dkl hidden=[16] steps=40; stop after 40").plan
    assert plan is not None
    decider = Decider(plan, features, seed)
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.choice(len(truth), 6, replace=False)]
    measured = np.zeros(len(truth), bool)
    measured[order] = True
    for _ in range(steps):
        ok = [i for i in order if np.isfinite(truth[i])]
        failed = np.array([i for i in order if not np.isfinite(truth[i])], np.int64)
        decision = decider.decide(np.asarray(ok), truth[ok], failed)
        pick = select_next(decision.scores, measured)
        measured[pick] = True
        order.append(pick)
    return int(np.sum(~np.isfinite(truth[order[6:]])))


def test_decider_stops_returning_to_where_scalars_fail(monkeypatch) -> None:
    """Failed points never train the model, so its uncertainty over the vacuum half stays
    high and EI keeps going there; weighed by the success estimate, it goes there less."""
    _positions, features, truth = _half_vacuum()
    with_estimate = [_failures(features, truth, seed) for seed in range(3)]
    monkeypatch.setattr(decide_module, "weigh_by_success", lambda scores, p: scores)
    without = [_failures(features, truth, seed) for seed in range(3)]
    assert all(a < b for a, b in zip(with_estimate, without)), (with_estimate, without)
    assert sum(with_estimate) < 0.9 * sum(without), (with_estimate, without)


def test_decision_carries_the_estimate_only_after_a_failure() -> None:
    _positions, features, truth = _half_vacuum(16)
    plan = compile_source("scalarize sum(1 eV .. 2 eV); acquire EI; "
                          "model dkl hidden=[8] steps=10").plan
    assert plan is not None
    ok = np.flatnonzero(np.isfinite(truth))[::4]
    decider = Decider(plan, features, 0)
    first = decider.decide(ok, truth[ok], np.array([], np.int64))
    assert first.p_success is None and decider.success is None
    plain = acquire("ei", first.mean, first.std, y_best=float(truth[ok].max()), xi=plan.acquire.xi)
    np.testing.assert_allclose(first.scores, plain, rtol=1e-5, atol=1e-7)
    bad = np.flatnonzero(~np.isfinite(truth))[::4]
    second = decider.decide(ok, truth[ok], bad)
    assert second.p_success is not None and decider.success.measured == len(ok) + len(bad)
    assert second.p_success[bad].max() < second.p_success[ok].min()
