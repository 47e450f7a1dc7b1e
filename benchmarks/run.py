"""End-to-end step time and microscope idle fraction of a real run.

The simulated microscope runs as a separate process in real time (`--speed 1`: settle,
exposure and readout really take that long) and the agent drives it over the bus, as in
`dkl run`. For each exposure the table gives the wall time of the run, the step time
(p50/p95), the decision time (train + predict + acquire, overlapped with the next
exposure) and the fraction of the run during which the microscope sat idle.

    python benchmarks/run.py                      # 10 ms, 100 ms and 1 s, 200 steps each
    python benchmarks/run.py --exposures 0.1 --steps 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dkl.agent import processes
from dkl.agent.journal import open_recorder
from dkl.agent.loop import Experiment
from dkl.dsl import compile_source
from dkl.instruments.client import InstrumentClient

PLAN = """\
scalarize peak(1.2 eV .. 2.4 eV)
exposure {exposure} s
acquire EI
seed random 10
stop after {steps}
"""


def one_run(exposure: float, steps: int, instrument: str, out: Path) -> dict[str, float]:
    plan = compile_source(PLAN.format(exposure=exposure, steps=steps)).plan
    assert plan is not None
    recorder = open_recorder(out, None)
    with InstrumentClient(instrument, timeout_s=30.0) as client:
        t0 = time.perf_counter()
        outcome = Experiment(plan, client, recorder, out, seed=0).run()
        wall = time.perf_counter() - t0
    recorder.close()
    assert outcome.exit_status == "success", outcome.reason
    r = np.load(out / "results.npz")
    step = r["timing_step"][10:]  # after the seed points, when the model decides
    decide = (r["timing_train"] + r["timing_predict"] + r["timing_acquire"])[10:]
    return {
        "wall": wall,
        "step_p50": float(np.percentile(step, 50)),
        "step_p95": float(np.percentile(step, 95)),
        "decide": float(np.mean(decide)),
        "idle": outcome.idle_fraction,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    child = processes.start("instrument", processes.dkl_command(
        "instrument", "sim", "builtin:plasmonic", "--speed", "1", "--noise", "poisson",
        "--bind", "tcp://127.0.0.1:0", "--deadman", "60"))
    try:
        rows = []
        for exposure in args.exposures:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append((exposure, one_run(exposure, args.steps, child.endpoint, Path(tmp))))
    finally:
        processes.stop(child)
    print(f"\n64x64 candidates (builtin plasmonic), {args.steps} steps, instrument in its own "
          "process at real-time speed\n")
    print("| exposure | run wall (s) | step p50 (s) | step p95 (s) | decision (s) | idle |")
    print("|---|---|---|---|---|---|")
    for exposure, r in rows:
        print(f"| {exposure * 1000:g} ms | {r['wall']:.1f} | {r['step_p50']:.3f} | "
              f"{r['step_p95']:.3f} | {r['decide']:.3f} | {r['idle'] * 100:.1f} % |")


if __name__ == "__main__":
    main()
