"""Decision latency of the deep-kernel GP agent: fit + predict + acquire, per measurement.

For each candidate grid (64x64, 256x256 positions, one 16x16-pixel patch each, 256-dim
features cut from a synthetic survey image) and each training-set size n, a fresh model
is traced and cold-fitted on n points (reported separately: the one-off compile cost and
the cold fit), then `--decisions` decisions are timed as the loop makes them: one new
measurement arrives, warm-started fit (default warm steps), predict mean and std over all
candidates, EI, argmax over unmeasured candidates. p50/p95 of the decision latency and of
each part, and the peak RSS of the process, are printed as a table. A last line gives the
one-off cost of the prediction after the training capacity doubles, when XLA compiles the
cross-kernel for the larger cache.

    /work/venv/bin/python benchmarks/latency.py              # full table
    /work/venv/bin/python benchmarks/latency.py --quick      # 64x64 and n <= 200 only
    /work/venv/bin/python benchmarks/latency.py --xla-train  # training loop under XLA too
    /work/venv/bin/python benchmarks/latency.py --linear 0   # the deep kernel alone
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np


def survey(size: int, seed: int) -> np.ndarray:
    """A smooth synthetic structural image: Gaussian 'atoms' on a distorted lattice + noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size), np.float32)
    spacing = 8.0
    for cy in np.arange(spacing / 2, size, spacing):
        for cx in np.arange(spacing / 2, size, spacing):
            dy, dx = rng.normal(0, 0.8, 2)
            amp = 1.0 + 0.5 * np.sin(cx / size * 6.0) * np.cos(cy / size * 4.0)
            y0, y1 = int(max(cy - 6, 0)), int(min(cy + 7, size))
            x0, x1 = int(max(cx - 6, 0)), int(min(cx + 7, size))
            img[y0:y1, x0:x1] += amp * np.exp(
                -((yy[y0:y1, x0:x1] - cy - dy) ** 2 + (xx[y0:y1, x0:x1] - cx - dx) ** 2) / 4.0)
    return img + 0.05 * rng.standard_normal((size, size)).astype(np.float32)


def patches(img: np.ndarray, w: int = 16) -> np.ndarray:
    """(H*W, w*w) float32 patch features around every pixel (reflect-padded), normalised."""
    lo = w // 2
    padded = np.pad(img, ((lo, w - lo - 1), (lo, w - lo - 1)), mode="reflect")
    view = np.lib.stride_tricks.sliding_window_view(padded, (w, w))
    feats = view.reshape(-1, w * w).astype(np.float32, copy=False)  # reshape copies once
    feats -= feats.mean()
    feats /= feats.std()
    return feats


def target(img: np.ndarray) -> np.ndarray:
    """A scalar 'measurement' per position that depends on the local structure."""
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] / size
    return (np.sin(6.0 * xx) * np.cos(4.0 * yy) + 0.3 * img).ravel().astype(np.float64)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(feats: np.ndarray, y: np.ndarray, n: int, decisions: int, seed: int,
             spec, xla: bool = False) -> dict[str, float]:
    from dkl.agent.acquisition import acquire, select_next
    from dkl.agent.models.dkl_gp import DKLModel

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(feats))
    model = DKLModel(spec, feats.shape[1], seed=seed, jit_compile=xla)
    model.set_input_normalisation(feats)
    x0, y0 = feats[order[:n]], y[order[:n]]
    first = model.fit(x0, y0, max_steps=1).seconds  # traces train/posterior functions
    again = model.fit(x0, y0, max_steps=1).seconds
    t = time.perf_counter()
    model.predict(feats)
    pred_first = time.perf_counter() - t
    t = time.perf_counter()
    model.predict(feats)
    pred_again = time.perf_counter() - t
    compile_s = max(first - again, 0.0) + max(pred_first - pred_again, 0.0)
    fresh = DKLModel(spec, feats.shape[1], seed=seed, jit_compile=xla)  # a run's cold fit
    fresh.set_input_normalisation(feats)
    fresh.fit(x0, y0, max_steps=1)
    fresh = DKLModel(spec, feats.shape[1], seed=seed, jit_compile=xla)
    fresh.set_input_normalisation(feats)
    cold = fresh.fit(x0, y0).seconds  # includes its own trace
    fresh.predict(feats)  # the run's first prediction: its compile is in `compile_s` above
    measured = np.zeros(len(feats), bool)
    measured[order[:n]] = True
    chosen = list(order[:n])
    parts: dict[str, list[float]] = {"fit": [], "predict": [], "acquire": [], "total": []}
    for _ in range(decisions):
        t0 = time.perf_counter()
        fresh.fit(feats[chosen], y[chosen])
        t1 = time.perf_counter()
        mean, std = fresh.predict(feats)
        t2 = time.perf_counter()
        scores = acquire("ei", mean, std, y_best=float(np.max(y[chosen])), xi=0.01)
        nxt = select_next(scores, measured)
        t3 = time.perf_counter()
        measured[nxt] = True
        chosen.append(nxt)
        for key, dt in (("fit", t1 - t0), ("predict", t2 - t1), ("acquire", t3 - t2),
                        ("total", t3 - t0)):
            parts[key].append(dt)
    out = {"compile": compile_s, "cold_fit": cold, "capacity": fresh.capacity,
           "traces": fresh.trace_counts["train"]}
    for key, vals in parts.items():
        out[key + "_p50"] = pct(vals, 50)
        out[key + "_p95"] = pct(vals, 95)
    return out


def recompile_cost(feats: np.ndarray, y: np.ndarray, seed: int, spec,
                   xla: bool = False) -> float:
    """Extra seconds of the one prediction after the training capacity doubles (64 -> 65
    points), where XLA compiles the cross-kernel for the larger cache."""
    from dkl.agent.models.dkl_gp import DKLModel

    order = np.random.default_rng(seed).permutation(len(feats))
    model = DKLModel(spec, feats.shape[1], seed=seed, jit_compile=xla)
    model.set_input_normalisation(feats)
    model.fit(feats[order[:64]], y[order[:64]])
    model.predict(feats)  # the first compile, not counted
    seconds = []
    for n in (64, 65):  # the 65th point doubles the capacity: a new cache shape
        model.fit(feats[order[:n]], y[order[:n]])
        t = time.perf_counter()
        model.predict(feats)
        seconds.append(time.perf_counter() - t)
    return max(seconds[1] - seconds[0], 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 50, 200, 500])
    parser.add_argument("--decisions", type=int, default=12,
                        help="timed decisions per case (n grows by one each)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--xla-train", action="store_true",
                        help="compile the training loop with XLA too (DKLModel jit_compile)")
    parser.add_argument("--quick", action="store_true", help="64x64 grid, n <= 200")
    parser.add_argument("--linear", type=int, default=None,
                        help="`model dkl linear=K`: the linear kernel on K principal "
                             "components; 0: the deep kernel alone (default: the language's)")
    args = parser.parse_args(argv)
    if args.quick:
        args.grids, args.n = [64], [n for n in args.n if n <= 200]

    import tensorflow as tf

    import dkl.agent.models  # noqa: F401  (first: it loads pip's CUDA libraries, _cuda.py)
    from dkl.dsl.plan import ModelSpec

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    spec = ModelSpec() if args.linear is None else ModelSpec(linear=args.linear)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"# device: {'GPU ' + gpus[0].name if gpus else 'CPU'}, cores: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}, TF {tf.__version__}")
    print(f"# spec: hidden={spec.hidden} embed={spec.embed} kernel={spec.kernel} "
          f"cold steps={spec.steps} warm steps={max(10, spec.steps // 10)} "
          f"precision={spec.precision} linear={spec.linear}; "
          f"training loop XLA: {args.xla_train}; "
          f"{args.decisions} decisions per row")
    header = ("grid", "n", "cap", "compile s", "cold fit s", "fit p50", "predict p50",
              "acquire p50", "decision p50", "decision p95", "peak RSS MB")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    recompile: dict[int, float] = {}
    for size in args.grids:
        img = survey(size, args.seed)
        feats, y = patches(img), target(img)
        for n in args.n:
            r = run_case(feats, y, n, args.decisions, args.seed, spec, args.xla_train)
            row = (f"{size}x{size}", str(n), str(r["capacity"]), f"{r['compile']:.2f}",
                   f"{r['cold_fit']:.2f}", f"{r['fit_p50']:.3f}", f"{r['predict_p50']:.3f}",
                   f"{r['acquire_p50']:.3f}", f"{r['total_p50']:.3f}",
                   f"{r['total_p95']:.3f}", f"{peak_rss_mb():.0f}")
            print("| " + " | ".join(row) + " |", flush=True)
        recompile[size] = recompile_cost(feats, y, args.seed, spec, args.xla_train)
        del feats
    print("# once per doubling of the training capacity (as the training step retraces; "
          "a run sizes it up front), XLA compiles the cross-kernel again: " + ", ".join(
              f"{s}x{s} +{t:.2f} s" for s, t in recompile.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
