"""Offline discovery benchmark: how much sooner does the DKL agent find the best spot than random?

Every dataset is replayed offline: the "measurement" at a candidate is the dataset's own
spectrum or pattern there, so the scalar the agent sees is exactly the true scalar map
(`scalarize_many` over all candidates). The loop is the agent's, run through the agent's
own code with the plan's defaults: the seed points from `seed_indices`, then the agent's
`Decider` (fit the deep-kernel GP on the measured (patch, scalar) pairs with a warm start,
predict every candidate, score with the plan's acquisition function) and `select_next`.
A candidate whose scalar fails (e.g. no O counts for an EDS ratio) is measured-but-unusable:
it uses up a measurement, is never measured again, never trains the model and never counts
as "best found"; as in the agent, it feeds the decider's success estimate.

Per dataset and method, over several seeds:
  * to top-1 %: measurements until the best value found is in the top 1 % of the true map
    (ties at the 99th percentile included). Random sampling is run to the end of a random
    permutation, so it is never censored, and the speed-up is taken against the exact
    expectation for sampling without replacement, (N + 1) / (K + 1) for K top candidates
    among N; a DKL seed that misses within the budget counts as budget + 1 (shown as >=).
  * best pct @5 %: percentile of the best value found after 5 % of the candidates (100 =
    the map's maximum).
  * map r: Pearson correlation of the map a run leaves (the agent's final fit from fresh
    weights on every usable point) with the true map over all candidates that have a value
    (for random: a DKL fitted on the random points).
  * oracle: a reference, not a method. It measures best-first by the scalar of data
    smoothed over 2 scan pixels (the local mean of the signal, which no survey patch
    carries). Where even it is slow, the top 1 % is mostly noise.
  * a perfect model after the seed points: the speed-up of a model whose first decision
    always hits, the ceiling that the plan's random seed points leave (`seed_floor`).

Defaults: built-ins at 64 x 64 (dataset seed 0) with stride 2 and 8 px patches (1,024
candidates); a budget of 10 % of the candidates (at least 5 % and 20); the seed points
and model settings the language gives a plan that says nothing about them (cold and
warm-started Adam steps included, exactly as `dkl run` trains); 5 run seeds (seed points
and model initialisation). The SciFiReaders and SiO2 EDS sets are read from ../shared/data
and skipped, with the reason, when absent.

Usage: python benchmarks/discovery.py [--quick] [--seeds 5] [--first-seed 0]
       [--datasets plasmonic,sio2-eds] [--oracle-px 2] [--model "linear=0"]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from scipy.ndimage import gaussian_filter

from dkl.agent.acquisition import select_next
from dkl.agent.decide import Decider
from dkl.agent.features import candidates, patches
from dkl.agent.loop import FINAL_FIT_TRIES
from dkl.agent.scalarize import DetectorGeometry, SpectrumAxis, scalarize_many
from dkl.agent.seeding import seed_indices
from dkl.dsl import compile_source
from dkl.dsl.plan import Acquisition, Plan
from dkl.instruments import load_builtin
from dkl.instruments.datasets import Dataset
from dkl.instruments.loaders import load_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
METHODS = ("dkl-EI", "dkl-UCB", "random")


@dataclass(frozen=True)
class Case:
    """One dataset with its scalarizer, candidate lattice and measurement budget."""

    name: str
    load: Callable[[], Dataset]
    instrument: str  #: the plan's `instrument` line (checked against the modality)
    modality: str
    scalarize: str
    patch_px: int = 8
    stride_px: int = 2
    budget_frac: float = 0.10  #: measurements per run, as a fraction of the candidates
    needs: tuple[Path, ...] = ()  #: files that must exist, else the case is skipped


@dataclass
class Problem:
    """A case made concrete: candidate features and the true scalar at each candidate."""

    case: Case
    plan: Plan
    positions: np.ndarray  #: (N, 2) candidate (x, y)
    features: np.ndarray  #: (N, patch_px**2) standardised survey patches
    truth: np.ndarray  #: (N,) true scalar, NaN where the scalarizer fails
    top: np.ndarray  #: (N,) bool, candidate is in the top 1 % of the true map
    budget: int
    smoothed: np.ndarray | None = None  #: (N,) the scalar of spatially smoothed data (oracle)

    @property
    def n(self) -> int:
        return len(self.truth)


@dataclass
class RunResult:
    """One seed of one method."""

    to_top: int | None  #: measurements until a top-1 % value was found (None: not found)
    best_pct_5: float  #: percentile of the best value after 5 % of the candidates
    map_r: float  #: correlation of the final predicted mean with the true map
    failed: int = 0  #: measurements whose scalar failed (within the budget)
    seconds: float = 0.0
    order: list[int] = field(default_factory=list)  #: candidates in the order measured


def builtin_cases(size: int) -> list[Case]:
    """The built-in synthetic datasets, with a scalarizer that follows each one's physics."""
    return [
        # Edge modes (~1.9-2.5 eV) light up along particle borders; corners sit lower.
        Case("plasmonic", lambda: load_builtin("plasmonic", seed=0, size=size),
             'builtin "plasmonic"', "eels", "peak(1.5 eV .. 2.6 eV)"),
        # Ti L2,3 edge strength: phase A (Ti oxide) side of the interface, thicker = more.
        Case("core-loss", lambda: load_builtin("core-loss", seed=0, size=size),
             'builtin "core-loss"', "eels", "edge(455 eV .. 475 eV, background=420 eV .. 450 eV)"),
        Case("4dstem", lambda: load_builtin("4dstem", seed=0, size=size),
             'builtin "4dstem"', "4dstem", "com.magnitude"),
    ]


def real_cases(data: Path = DATA) -> list[Case]:
    """Recorded spectrum images from ../shared/data (skipped when the files are absent)."""
    eels = data / "scifireaders_SI_EELS" / "SI-EELS_Spectrum_Image.dm3"
    eels_survey = data / "scifireaders_SI_EELS" / "SI-HAADF.dm3"
    eds = data / "particlespy_SiO2_EDS" / "SiO2_EDS_Spectrum_Image.hspy"
    eds_survey = data / "particlespy_SiO2_EDS" / "SiO2_HAADF_Image.hspy"
    return [
        # 49 x 6 grid: every pixel is a candidate; 3 px patches (the survey is 6 px wide).
        Case("scifireaders-eels", lambda: load_dataset(eels, survey=eels_survey),
             f'"{eels}"', "eels", "edge(455 eV .. 475 eV, background=420 eV .. 450 eV)",
             patch_px=3, stride_px=1, budget_frac=0.15, needs=(eels, eels_survey)),
        # Si K / O K line ratio, ~50 counts per spectrum: about half the points fail.
        Case("sio2-eds", lambda: load_dataset(eds, survey=eds_survey),
             f'"{eds}"', "eds", "ratio(sum(1.64 keV .. 1.84 keV), sum(0.45 keV .. 0.6 keV))",
             patch_px=16, stride_px=2, budget_frac=0.06, needs=(eds, eds_survey)),
    ]


def plan_for(case: Case, steps: int | None, budget: int, n_seed: int | None = None,
             model_settings: str = "") -> Plan:
    """Compile the case as an experiment, so the benchmark uses the agent's own settings.

    `steps` None and no `model_settings` (e.g. "linear=0") leave the model line out, and
    `n_seed` None the seed line: the language's defaults, as in `dkl run`.
    """
    settings = " ".join(([] if steps is None else [f"steps={steps}"]) + (
        [model_settings] if model_settings else []))
    model = f"model dkl {settings}\n" if settings else ""
    text = (f"experiment \"discovery: {case.name}\"\ninstrument sim {case.instrument}\n"
            f"measure {case.modality}\npatch {case.patch_px} px\nstride {case.stride_px} px\n"
            f"scalarize {case.scalarize}\nmaximize\nacquire EI\n"
            + ("" if n_seed is None else f"seed random {n_seed}\n")
            + f"{model}stop after {budget}\n")
    result = compile_source(text)
    if result.plan is None:
        raise ValueError(f"{case.name}: plan does not compile: {result.diagnostics}")
    return result.plan


def scalar_map(plan: Plan, ds: Dataset, positions: np.ndarray,
               smooth_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The plan's scalar at every candidate (NaN, failed) from the recorded data, or from data
    smoothed with a Gaussian of `smooth_px` scan pixels (the local mean of the signal)."""
    xs, ys = positions[:, 0], positions[:, 1]
    if ds.modality == "4dstem":
        context: SpectrumAxis | DetectorGeometry = DetectorGeometry(ds.mrad_per_px, ds.center)
        data, signal_axes = ds.patterns, 2
    else:
        context, data, signal_axes = SpectrumAxis(ds.energy), ds.spectra, 1
    if smooth_px > 0:
        sigma = (smooth_px, smooth_px) + (0,) * signal_axes
        data = gaussian_filter(data.astype(np.float32), sigma)
    return scalarize_many(plan.scalarize, data[ys, xs], context)


def prepare(case: Case, steps: int | None = None, n_seed: int | None = None,
            oracle_px: float = 0.0, model_settings: str = "") -> Problem:
    """Load the dataset, cut candidate patches and compute the true scalar map.

    `oracle_px` > 0 also computes the map of data smoothed over that many scan pixels, for
    `oracle_to_top`.
    """
    ds = case.load()
    positions = candidates(ds.image.shape, case.patch_px, case.stride_px)
    n = len(positions)
    budget = max(math.ceil(case.budget_frac * n), math.ceil(0.05 * n), 20)
    plan = plan_for(case, steps, budget, n_seed, model_settings)
    features = patches(ds.image, positions, plan.patch_px)
    truth, failed = scalar_map(plan, ds, positions)
    if failed.all():
        raise ValueError(f"{case.name}: the scalarizer fails at every candidate")
    signed = truth if plan.maximize else -truth
    threshold = np.quantile(signed[~failed], 0.99)
    top = ~failed & (np.where(failed, -np.inf, signed) >= threshold)
    smoothed = scalar_map(plan, ds, positions, oracle_px)[0] if oracle_px > 0 else None
    return Problem(case, plan, positions, features, truth, top, budget, smoothed)


def oracle_to_top(problem: Problem, draws: int = 20) -> float:
    """Mean measurements to a top-1 % value, measuring best-first by the smoothed map.

    A reference, not a method: it knows the local mean of the signal around every
    candidate, which no survey patch carries. When it is itself slow, the top 1 % is mostly
    noise that no model can predict. Ties are broken at random (mean over `draws`).
    """
    if problem.smoothed is None:
        raise ValueError("prepare the problem with oracle_px > 0")
    signed = problem.smoothed if problem.plan.maximize else -problem.smoothed
    key = np.where(np.isfinite(signed), signed, -np.inf)
    rng = np.random.default_rng(0)
    firsts = [int(np.flatnonzero(problem.top[np.lexsort((rng.random(problem.n), -key))])[0]) + 1
              for _ in range(draws)]
    return float(np.mean(firsts))


def percentile_of(problem: Problem, value: float) -> float:
    """Percent of the (finite) true map at or below `value` (in the plan's direction)."""
    finite = problem.truth[np.isfinite(problem.truth)]
    if not np.isfinite(value):
        return 0.0
    if problem.plan.maximize:
        return 100.0 * float(np.mean(finite <= value))
    return 100.0 * float(np.mean(finite >= value))


def _metrics(problem: Problem, order: list[int], mean: np.ndarray | None) -> RunResult:
    """Score one run from the order in which candidates were measured."""
    idx = np.asarray(order, dtype=np.int64)
    hits = np.flatnonzero(problem.top[idx])
    to_top = int(hits[0]) + 1 if len(hits) else None
    first = problem.truth[idx[: math.ceil(0.05 * problem.n)]]
    first = first[np.isfinite(first)]
    best = (first.max() if problem.plan.maximize else first.min()) if len(first) else np.nan
    map_r = np.nan
    finite = np.isfinite(problem.truth)
    if mean is not None and finite.sum() > 2 and np.std(mean[finite]) > 0:
        map_r = float(np.corrcoef(mean[finite], problem.truth[finite])[0, 1])
    failed = int(np.sum(~np.isfinite(problem.truth[idx[: problem.budget]])))
    return RunResult(to_top, percentile_of(problem, float(best)), map_r, failed, order=order)


def plan_of(problem: Problem, method: str) -> Plan:
    """The plan a method runs: the case's plan with EI, or with UCB at the language default."""
    return replace(problem.plan, acquire=Acquisition(name="ucb")) if method.endswith(
        "UCB") else problem.plan


def run_dkl(problem: Problem, method: str, seed: int) -> RunResult:
    """The agent's loop: the plan's seed points, then decide (fit/predict/score) and select."""
    t0 = time.perf_counter()
    plan, truth, n = plan_of(problem, method), problem.truth, problem.n
    rng = np.random.default_rng(seed)  # as the agent: one generator for seeding and fallbacks
    queue = seed_indices(plan.seed, problem.positions, rng)[: problem.budget]
    decider = Decider(plan, problem.features, seed)
    radius = plan.acquire.penalty_px or None
    measured = np.zeros(n, dtype=bool)
    order: list[int] = []
    while len(order) < problem.budget:
        ok = [i for i in order if np.isfinite(truth[i])]
        if queue:
            pick = queue.pop(0)
        elif len(ok) < 2:  # too little to fit: sample at random, as the agent does
            pick = int(rng.choice(np.flatnonzero(~measured)))
        else:
            failed = [i for i in order if not np.isfinite(truth[i])]
            decision = decider.decide(np.asarray(ok), truth[ok], np.asarray(failed, np.int64))
            recent = problem.positions[order[-5:]].astype(np.float64)
            pick = select_next(decision.scores, measured, problem.positions, recent, radius)
        measured[pick] = True
        order.append(pick)
    ok = [i for i in order if np.isfinite(truth[i])]
    # the map a run leaves: as in the agent, the best of a few fits from fresh weights on
    # every usable point
    mean = decider.decide(np.asarray(ok), truth[ok], restart=True,
                          tries=FINAL_FIT_TRIES).mean if len(ok) >= 2 else None
    result = _metrics(problem, order, mean)
    result.seconds = time.perf_counter() - t0
    return result


def run_random(problem: Problem, seed: int) -> RunResult:
    """Uniform random order over all candidates; the map is a DKL fitted on the budget as
    the agent fits its final map."""
    t0 = time.perf_counter()
    order = np.random.default_rng(seed).permutation(problem.n).tolist()
    ok = [i for i in order[: problem.budget] if np.isfinite(problem.truth[i])]
    mean = None
    if len(ok) >= 2:
        decider = Decider(problem.plan, problem.features, seed)
        mean = decider.decide(np.asarray(ok), problem.truth[ok], restart=True,
                              tries=FINAL_FIT_TRIES).mean
    result = _metrics(problem, order, mean)
    result.seconds = time.perf_counter() - t0
    return result


def expected_random(problem: Problem) -> float:
    """Exact mean draws until the first top candidate, sampling without replacement."""
    return (problem.n + 1) / (int(problem.top.sum()) + 1)


def seed_floor(problem: Problem) -> float:
    """Mean measurements to a top-1 % value for a perfect model after the plan's seed points.

    Random seed points find a top candidate only by chance; the best any model can do is to
    hit with the first decision after them. With s seed points, N candidates and K top ones,
    E[min(first hit, s + 1)] = sum_{j=0..s} P(no top in the first j draws). The random
    expectation divided by this is the largest speed-up the plan's seeding allows.
    """
    n, k, s = problem.n, int(problem.top.sum()), problem.plan.seed.n
    p_miss = np.cumprod([max(n - k - i, 0) / (n - i) for i in range(min(s, n))])
    return float(1.0 + p_miss.sum())


def summarise(problem: Problem, method: str, runs: list[RunResult]) -> dict[str, object]:
    """One table row: censored seeds count as budget + 1 (the mean is then a lower bound)."""
    reached = [r.to_top for r in runs if r.to_top is not None]
    counts = [r.to_top if r.to_top is not None else problem.budget + 1 for r in runs]
    mean_to_top = float(np.mean(counts))
    censored = len(reached) < len(runs)
    speedup = expected_random(problem) / mean_to_top
    return {
        "dataset": problem.case.name, "method": method, "n": problem.n,
        "budget": problem.budget, "top_k": int(problem.top.sum()),
        "to_top": mean_to_top, "censored": censored, "reached": len(reached),
        "seeds": len(runs), "best_pct": float(np.mean([r.best_pct_5 for r in runs])),
        "map_r": float(np.nanmean([r.map_r for r in runs])) if any(
            np.isfinite(r.map_r) for r in runs) else float("nan"),
        "failed": float(np.mean([r.failed for r in runs])),
        "speedup": speedup, "seconds": float(np.sum([r.seconds for r in runs])),
    }


def format_table(rows: list[dict[str, object]], expected: dict[str, float]) -> str:
    """The benchmark's one table, as markdown."""
    head = ("| dataset | candidates (top-1 %) | budget | method | to top-1 % (reached) | "
            "best pct @5 % | map r | failed/run | speed-up vs random |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        bound = ">=" if r["censored"] else ""
        to_top = f"{bound}{r['to_top']:.1f} ({r['reached']}/{r['seeds']})"
        if r["method"] == "random":
            to_top += f", exact {expected[str(r['dataset'])]:.1f}"
        speed = f"{'<=' if r['censored'] else ''}{r['speedup']:.1f}x"
        lines.append(
            f"| {r['dataset']} | {r['n']} ({r['top_k']}) | {r['budget']} | {r['method']} | "
            f"{to_top} | {r['best_pct']:.1f} | {r['map_r']:.2f} | {r['failed']:.0f} | "
            f"{speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 32x32 built-ins, 2 seeds, 40 cold steps")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed .. first-seed + seeds - 1 (default 0)")
    parser.add_argument("--datasets", default="",
                        help="comma-separated subset, e.g. plasmonic,sio2-eds")
    parser.add_argument("--steps", type=int, default=None,
                        help="the plan's `model dkl steps=` (cold fit; warm fits take the "
                             "agent's share of it); default: the language's default")
    parser.add_argument("--model", default="",
                        help='more `model dkl` settings for every run, e.g. "linear=0"')
    parser.add_argument("--seed-points", type=int, default=None,
                        help="the plan's `seed random N`; default: the language's default")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of recorded datasets")
    parser.add_argument("--oracle-px", type=float, default=2.0,
                        help="also print the smoothed-map oracle, data smoothed over this many "
                             "scan pixels (default 2; 0 skips it)")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 5)
    steps = args.steps or (40 if args.quick else None)
    cases = builtin_cases(32 if args.quick else 64) + real_cases(args.data)
    if args.datasets:
        wanted = set(args.datasets.split(","))
        unknown = wanted - {c.name for c in cases}
        if unknown:
            parser.error(f"unknown dataset(s) {sorted(unknown)}")
        cases = [c for c in cases if c.name in wanted]
    t_start = time.perf_counter()
    rows: list[dict[str, object]] = []
    expected: dict[str, float] = {}
    ceilings: list[float] = []
    for case in cases:
        missing = [p for p in case.needs if not p.is_file()]
        if missing:
            print(f"skip {case.name}: {missing[0]} not found", flush=True)
            continue
        problem = prepare(case, steps, args.seed_points, args.oracle_px, args.model)
        expected[case.name] = expected_random(problem)
        print(f"{case.name}: {problem.n} candidates, top-1 % = {int(problem.top.sum())}, "
              f"failed scalars {int(np.isnan(problem.truth).sum())}, budget {problem.budget}",
              flush=True)
        floor = seed_floor(problem)
        ceilings.append(expected[case.name] / floor)
        print(f"  a perfect model after the {problem.plan.seed.n} random seed points: top 1 % "
              f"after {floor:.1f}, {ceilings[-1]:.1f}x sooner than random", flush=True)
        if problem.smoothed is not None:
            reach = oracle_to_top(problem)
            print(f"  oracle (data smoothed over {args.oracle_px:g} px): top 1 % after "
                  f"{reach:.1f}, {expected[case.name] / reach:.1f}x sooner than random",
                  flush=True)
        for method in METHODS:
            runs = [run_random(problem, s) if method == "random" else run_dkl(problem, method, s)
                    for s in range(args.first_seed, args.first_seed + seeds)]
            rows.append(summarise(problem, method, runs))
            print(f"  {method}: {rows[-1]['seconds']:.0f} s", flush=True)
    print()
    print(format_table(rows, expected))
    dkl_rows = [r for r in rows if r["method"] != "random"]
    if dkl_rows:
        for method in METHODS[:2]:
            ups = [float(r["speedup"]) for r in dkl_rows if r["method"] == method]
            met = sum(u >= 5 for u in ups)
            print(f"{method}: mean speed-up {np.mean(ups):.1f}x over {len(ups)} datasets "
                  f"(>= 5x on {met}); target >= 5x on average: "
                  f"{'met' if np.mean(ups) >= 5 else 'NOT met'}")
        print(f"a perfect model after the seed points: mean {np.mean(ceilings):.1f}x")
    print(f"command: python benchmarks/discovery.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"total time: {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
