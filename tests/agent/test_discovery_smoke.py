"""Smoke test of benchmarks/discovery.py: the offline agent loop and its metrics."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from dkl.instruments.datasets import Dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "discovery.py"


@pytest.fixture(scope="module")
def discovery():
    """The benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("discovery_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _blob_dataset(size: int = 24) -> Dataset:
    """A survey that is one smooth blob; each spectrum's 1-2 eV counts follow the blob."""
    y, x = np.mgrid[0:size, 0:size]
    blob = np.exp(-((x - 17.0) ** 2 + (y - 6.0) ** 2) / (2 * 5.0**2)).astype(np.float32)
    energy = np.linspace(0.0, 3.0, 31)
    line = ((energy >= 1.0) & (energy <= 2.0)).astype(np.float32)
    spectra = (1.0 + 100.0 * blob[..., None] * line).astype(np.float32)
    return Dataset("synthetic:blob", "eels", blob, spectra=spectra, energy=energy)


def _blob_problem(discovery, steps: int = 60):
    case = discovery.Case("blob", _blob_dataset, 'builtin "plasmonic"', "eels",
                          "sum(1 eV .. 2 eV)", patch_px=5, stride_px=2, budget_frac=0.2)
    return discovery.prepare(case, steps, n_seed=5)


def test_prepare_builds_the_true_map_and_the_top_set(discovery) -> None:
    problem = _blob_problem(discovery)
    assert problem.n == 144 and problem.features.shape == (144, 25)
    assert problem.budget == 29  # ceil(0.2 * 144)
    best = int(np.argmax(problem.truth))
    assert problem.top[best] and 1 <= problem.top.sum() <= 3
    assert discovery.expected_random(problem) == pytest.approx(145 / (problem.top.sum() + 1))
    assert discovery.percentile_of(problem, float(problem.truth.max())) == 100.0
    assert discovery.percentile_of(problem, float("nan")) == 0.0


def test_dkl_finds_a_learnable_maximum_sooner_than_random(discovery) -> None:
    problem = _blob_problem(discovery)
    dkl = discovery.run_dkl(problem, "dkl-EI", seed=3)
    rand = discovery.run_random(problem, seed=3)
    n_seed = problem.plan.seed.n
    assert len(dkl.order) == problem.budget == len(set(dkl.order))
    assert not problem.top[dkl.order[:n_seed]].any()  # the model, not the seeding, finds it
    assert dkl.to_top is not None and dkl.to_top <= n_seed + 5
    assert rand.to_top is not None and dkl.to_top < rand.to_top
    assert dkl.to_top < discovery.expected_random(problem) / 3
    assert dkl.best_pct_5 >= rand.best_pct_5
    assert np.isfinite(dkl.map_r) and dkl.failed == 0
    row = discovery.summarise(problem, "dkl-EI", [dkl])
    assert row["reached"] == 1 and not row["censored"]
    table = discovery.format_table([row], {"blob": discovery.expected_random(problem)})
    assert "| blob |" in table and "dkl-EI" in table


def test_failed_scalars_use_up_measurements_but_never_count(discovery) -> None:
    problem = _blob_problem(discovery)
    problem.truth[::2] = np.nan  # half the candidates fail
    problem.top &= np.isfinite(problem.truth)
    order = list(range(problem.n))
    result = discovery._metrics(problem, order, None)
    assert result.failed == (problem.budget + 1) // 2
    assert np.isnan(result.map_r)


def test_missing_real_data_is_skipped_with_a_reason(discovery, tmp_path, capsys) -> None:
    assert discovery.main(["--data", str(tmp_path), "--datasets", "sio2-eds"]) == 0
    out = capsys.readouterr().out
    assert "skip sio2-eds:" in out and "not found" in out


def test_smoothed_map_oracle_is_a_reference_for_learnable_maps(discovery) -> None:
    case = discovery.Case("blob", _blob_dataset, 'builtin "plasmonic"', "eels",
                          "sum(1 eV .. 2 eV)", patch_px=5, stride_px=2, budget_frac=0.2)
    problem = discovery.prepare(case, 60, n_seed=5, oracle_px=1.0)
    assert problem.smoothed is not None and problem.smoothed.shape == problem.truth.shape
    assert discovery.oracle_to_top(problem) == 1.0  # a smooth blob: the local mean finds it
    problem.top[:] = False  # a "top" the local mean does not point to: the oracle is slow
    problem.top[int(np.argmin(problem.smoothed))] = True
    assert discovery.oracle_to_top(problem) == problem.n
    with pytest.raises(ValueError, match="oracle_px"):
        discovery.oracle_to_top(discovery.prepare(case, 60, n_seed=5))


def test_seed_floor_is_the_exact_expectation_for_a_perfect_model(discovery) -> None:
    problem = _blob_problem(discovery)
    problem.top[:] = False
    problem.top[:1] = True
    problem.truth = problem.truth[:5]
    problem.top = problem.top[:5]
    problem.plan = discovery.replace(problem.plan, seed=discovery.replace(problem.plan.seed, n=2))
    # N = 5, K = 1, 2 seed points: a hit at draw 1 or 2 (1/5 each), else the first decision
    assert discovery.seed_floor(problem) == pytest.approx(1 / 5 + 2 / 5 + 3 * 3 / 5)
    rng = np.random.default_rng(0)  # and by simulation, as the benchmark's loop would see it
    draws = [min(int(np.flatnonzero(problem.top[rng.permutation(5)])[0]) + 1, 3)
             for _ in range(20000)]
    assert discovery.seed_floor(problem) == pytest.approx(np.mean(draws), abs=0.03)
