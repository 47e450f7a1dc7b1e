"""Our deep-kernel GP against gpax viDKL and atomai dklGPR on the same active-learning task.

Task: 64x64 candidates, one 16x16-pixel patch each (256-dim features from the synthetic
survey of `latency.py`), a scalar map to maximise, `--seed-points` random measurements,
then `--decisions` decisions. Every framework makes the same decision each step: fit on
the measured points, predict mean and variance over all candidates, textbook EI (best
*observed* value, xi = 0.01), argmax over unmeasured candidates. Only the model differs.
The peers run the way their documentation shows (a new model per step: gpax clears its
compile cache per model, atomai keeps training on the old data if refitted), each in its
own virtual environment, installed on first use with the pins below; a peer that cannot
be installed or imported is skipped with the reason.

    /work/venv/bin/python benchmarks/peers.py [--envs DIR] [--decisions 20] [--seeds 1]
        [--alt-linear 0] [--peers gpax,atomai] [--no-install]

Ours runs twice: with the language's defaults (the deep kernel plus a linear kernel on the
patches' first 32 principal components), and with `model dkl linear=0` (the deep kernel
alone). Map r is the correlation of the map each framework leaves with the true map: the
peers' last model, and ours refitted from fresh weights on the same points, as `dkl run`
does at the end of a run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import patches, survey, target

PEERS: dict[str, dict] = {
    "gpax viDKL": {
        "env": "gpax",
        "pins": ["gpax==0.1.9", "numpyro==0.19.0", "jax==0.7.2", "jaxlib==0.7.2"],
        "import": "import gpax",
        "steps": 1000,  # viDKL.fit default
        "fit_predict": """
import gpax
key_fit, key_pred = gpax.utils.get_keys(SEED + step)
model = gpax.viDKL(X.shape[1], 2, "RBF")
model.fit(key_fit, X[chosen], y[chosen], num_steps=STEPS, step_size=0.005,
          progress_bar=False, print_summary=False)
t_fit = time.perf_counter()
mean, var = model.predict_in_batches(key_pred, X, batch_size=1024)
""",
    },
    "atomai dklGPR": {
        "env": "atomai",
        "pins": ["atomai", "six"],  # atomai -> mendeleev imports six without requiring it
        "import": "import atomai",
        "steps": 100,
        "fit_predict": """
import atomai
model = atomai.models.dklGPR(X.shape[1], embedim=2, precision="single", seed=SEED)
model.fit(X[chosen], y[chosen], training_cycles=STEPS, lr=0.01)
t_fit = time.perf_counter()
mean, var = model.predict(X, batch_size=len(X))
""",
    },
}

WORKER = """
import json, sys, time
import numpy as np
from scipy.special import ndtr
task = np.load(sys.argv[1])
X, y = task["X"].astype(np.float32), task["y"].astype(np.float64)
chosen = [int(i) for i in task["init"]]
SEED, STEPS, DECISIONS = int(task["seed"]), int(task["steps"]), int(task["decisions"])
fits, preds = [], []
for step in range(DECISIONS):
    t0 = time.perf_counter()
{body}
    t_pred = time.perf_counter()
    mean = np.asarray(mean, np.float64).reshape(-1)
    std = np.sqrt(np.maximum(np.asarray(var, np.float64).reshape(-1), 0.0))
    imp = mean - y[chosen].max() - 0.01
    z = imp / np.where(std > 0, std, 1.0)
    ei = np.where(std > 0, imp * ndtr(z) + std * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi),
                  np.maximum(imp, 0.0))
    ei[chosen] = -np.inf
    chosen.append(int(np.argmax(ei)))
    fits.append(t_fit - t0)
    preds.append(t_pred - t_fit)
json.dump({{"chosen": chosen, "fit": fits, "predict": preds, "mean": mean.tolist()}},
          open(sys.argv[2], "w"))
"""


def ensure_env(root: Path, name: str, pins: list[str], check: str, install: bool,
               timeout: float) -> tuple[Path | None, str]:
    """The peer's venv python, installing the pins on first use; (None, why) on failure."""
    python = root / name / "bin" / "python"
    if not python.exists():
        if not install:
            return None, f"no environment at {root / name} (--no-install)"
        venv.create(root / name, with_pip=True)
        try:
            proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *pins],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"pip install {' '.join(pins)} took over {timeout:.0f} s"
        if proc.returncode != 0:
            return None, "pip install failed: " + proc.stderr.strip().splitlines()[-1][:200]
    try:
        proc = subprocess.run([str(python), "-c", check], capture_output=True, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        return None, "import timed out"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["unknown error"]
        return None, "import failed: " + lines[-1][:200]
    return python, ""


def run_peer(python: Path, body: str, task: Path, timeout: float) -> dict:
    """Run the active-learning loop in the peer's environment; its JSON result."""
    code = WORKER.format(body="\n".join("    " + line for line in body.strip().splitlines()))
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "worker.py", Path(tmp) / "out.json"
        script.write_text(code)
        proc = subprocess.run([str(python), str(script), str(task), str(out)],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ["no output"]
            raise RuntimeError(lines[-1][:300])
        return json.loads(out.read_text())


def run_ours(X: np.ndarray, y: np.ndarray, init: list[int], decisions: int,
             seed: int, linear: int | None = None) -> dict:
    """Our loop; `linear` None takes the language's default for `model dkl linear=`."""
    from dkl.agent.acquisition import acquire, select_next
    from dkl.agent.loop import FINAL_FIT_TRIES
    from dkl.agent.models.dkl_gp import DKLModel
    from dkl.dsl.plan import ModelSpec

    spec = ModelSpec() if linear is None else ModelSpec(linear=linear)
    model = DKLModel(spec, X.shape[1], seed=seed)
    model.set_input_normalisation(X)
    chosen = list(init)
    measured = np.zeros(len(X), bool)
    measured[chosen] = True
    fits, preds = [], []
    t = time.perf_counter()
    model.fit(X[chosen], y[chosen])  # the cold fit that starts a run (compile included)
    model.predict(X)  # and the one-off trace of prediction
    cold = time.perf_counter() - t
    trained = list(chosen)
    for _ in range(decisions):
        t0 = time.perf_counter()
        trained = list(chosen)
        model.fit(X[trained], y[trained])
        t1 = time.perf_counter()
        mean, std = model.predict(X)
        t2 = time.perf_counter()
        nxt = select_next(acquire("ei", mean, std, y_best=float(y[chosen].max())), measured)
        measured[nxt] = True
        chosen.append(nxt)
        fits.append(t1 - t0)
        preds.append(t2 - t1)
    # the map a run leaves, as `dkl run` makes it: a fit from fresh weights, here on the
    # points the peers' last model saw
    t = time.perf_counter()
    model.fit(X[trained], y[trained], restart=True, tries=FINAL_FIT_TRIES)
    mean, _ = model.predict(X)
    final = time.perf_counter() - t
    return {"chosen": chosen, "fit": fits, "predict": preds, "mean": mean.tolist(),
            "cold": cold, "final": final}


def discovery(y: np.ndarray, chosen: list[int], n_init: int, mean: list[float]) -> dict:
    best = np.maximum.accumulate(y[chosen])
    top1 = np.quantile(y, 0.99)
    hit = np.flatnonzero(best >= top1)
    return {"best_pct": 100.0 * float(np.mean(y <= best[-1])),
            "top1_at": int(hit[0]) + 1 - n_init if len(hit) and hit[0] >= n_init else
            (0 if len(hit) else None),
            "map_r": float(np.corrcoef(np.asarray(mean), y)[0, 1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=Path, default=Path.home() / ".cache" / "dkl-peers",
                        help="folder holding one virtual environment per peer")
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--seed-points", type=int, default=10)
    parser.add_argument("--peer-steps", type=int, default=None,
                        help="training steps of every peer fit (default: each peer's own "
                             "default; ours: cold 200, warm 20)")
    parser.add_argument("--seed", type=int, default=0, help="survey image and first run seed")
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs with different seed points and model seeds")
    parser.add_argument("--grid", type=int, default=64)
    parser.add_argument("--alt-linear", type=int, default=0,
                        help="also run ours with `model dkl linear=K` (default 0: the deep "
                             "kernel alone)")
    parser.add_argument("--peers", default="gpax,atomai",
                        help="which peers to run, comma-separated (default both; e.g. atomai "
                             "alone for many seeds, as gpax takes about 5 s a decision)")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--install-timeout", type=float, default=1800.0)
    parser.add_argument("--peer-timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    wanted = {w.strip() for w in args.peers.split(",") if w.strip()}
    known = sorted(peer["env"] for peer in PEERS.values())
    if wanted - set(known):
        parser.error(f"unknown peer(s) {sorted(wanted - set(known))}; choose from "
                     f"{', '.join(known)}")

    img = survey(args.grid, args.seed)
    X, y = patches(img), target(img)
    seeds = range(args.seed, args.seed + args.seeds)
    inits = {s: np.random.default_rng(s).choice(len(X), args.seed_points, replace=False)
             for s in seeds}
    runs: dict[str, list[dict]] = {"ours (dkl)": [
        run_ours(X, y, list(inits[s]), args.decisions, s) for s in seeds]}
    runs[f"ours (dkl linear={args.alt_linear})"] = [
        run_ours(X, y, list(inits[s]), args.decisions, s, args.alt_linear) for s in seeds]
    skipped: dict[str, str] = {}
    args.envs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        task = Path(tmp) / "task.npz"
        for label, peer in PEERS.items():
            if peer["env"] not in wanted:
                continue
            steps = args.peer_steps or peer["steps"]
            python, why = ensure_env(args.envs, peer["env"], peer["pins"], peer["import"],
                                     not args.no_install, args.install_timeout)
            if python is None:
                skipped[label] = why
                continue
            try:
                for s in seeds:
                    np.savez(task, X=X, y=y, init=inits[s], seed=s, steps=steps,
                             decisions=args.decisions)
                    result = run_peer(python, peer["fit_predict"], task, args.peer_timeout)
                    runs.setdefault(label, []).append({**result, "steps": steps})
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                skipped[label] = f"run failed: {err}"
                runs.pop(label, None)

    def decision_p50(rs: list[dict]) -> float:
        return float(np.median(np.concatenate([np.add(r["fit"], r["predict"]) for r in rs])))

    from dkl.agent.loop import FINAL_FIT_TRIES

    ours_step = decision_p50(runs["ours (dkl)"])
    cold = np.median([r["cold"] for r in runs["ours (dkl)"]])
    final = np.median([r["final"] for r in runs["ours (dkl)"]])
    print(f"# {args.grid}x{args.grid} candidates, {args.seed_points} seed points, "
          f"{args.decisions} EI decisions, seeds {list(seeds)}; peers: a new model per step, "
          f"the map from the last; ours: warm start, 20 steps (first fit {cold:.2f} s, not "
          f"in p50), the map from the best of {FINAL_FIT_TRIES} fresh fits on the same "
          f"points ({final:.2f} s, once)")
    header = ("model", "steps/fit", "fit p50 s", "predict p50 s", "decision p50 s",
              "slower than ours", "best found (percentile, mean)", "top 1% after (per seed)",
              "map r (mean)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, rs in runs.items():
        ds = [discovery(y, r["chosen"], args.seed_points, r["mean"]) for r in rs]
        tops = ", ".join("never" if d["top1_at"] is None else str(d["top1_at"]) for d in ds)
        step = decision_p50(rs)
        fit = np.median(np.concatenate([r["fit"] for r in rs]))
        pred = np.median(np.concatenate([r["predict"] for r in rs]))
        print(f"| {label} | {rs[0].get('steps', 20)} | {fit:.3f} | {pred:.3f} | {step:.3f} | "
              f"{step / ours_step:.1f}x | {np.mean([d['best_pct'] for d in ds]):.2f} | "
              f"{tops} | {np.mean([d['map_r'] for d in ds]):.2f} |")
    for label, why in skipped.items():
        print(f"# skipped {label}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
