"""Scalarizer and patch throughput: vectorised vs point-by-point, in the same run.

    /work/venv/bin/python benchmarks/scalarize.py [--scan 64] [--loop 512]

Synthetic data with Poisson noise: a `scan x scan` EELS cube of 300 channels (three
Gaussian peaks whose position, height and width drift across the scan) and a
`scan x scan` 4D-STEM scan of 64 x 64 patterns (a bright-field disc whose centre drifts).
For each expression: the time for the whole scan with `scalarize_many`, the time per
point with `try_scalarize` over `--loop` points (extrapolated to the scan), and their
ratio. Then `patches` for 64 x 64 and 256 x 256 candidates of 16 x 16 px.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from dkl.agent.features import candidates, patches
from dkl.agent.scalarize import (
    DetectorGeometry,
    SpectrumAxis,
    scalarize_many,
    try_scalarize,
)
from dkl.dsl.plan import Call, Expr, Num, Ref, Win


def eels_cube(scan: int, rng: np.random.Generator) -> tuple[np.ndarray, SpectrumAxis]:
    energy = np.linspace(0.0, 10.0, 300)
    u, v = np.meshgrid(np.linspace(0, 1, scan), np.linspace(0, 1, scan))
    clean = np.full((scan, scan, len(energy)), 20.0)
    for centre, height, fwhm in ((3.0, 100.0, 0.5), (6.0, 60.0, 0.8), (8.0, 40.0, 0.3)):
        c = centre + 0.3 * u[..., None]
        h = height * (0.5 + v[..., None])
        w = fwhm * (1 + 0.3 * v[..., None])
        clean += h * np.exp(-4 * np.log(2) * ((energy - c) / w) ** 2)
    return rng.poisson(clean * 10.0).astype(np.float32), SpectrumAxis(energy)


def dstem_scan(scan: int, rng: np.random.Generator) -> tuple[np.ndarray, DetectorGeometry]:
    yy, xx = np.mgrid[0:64, 0:64]
    shifts = rng.uniform(-3, 3, size=(scan, scan, 2))
    r = np.hypot(xx[None, None] - 32 - shifts[..., :1, None], yy[None, None] - 32 -
                 shifts[..., 1:, None])
    clean = np.where(r <= 8, 200.0, 2.0).astype(np.float32)
    return rng.poisson(clean).astype(np.float32), DetectorGeometry(0.5, (32.0, 32.0))


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_expressions(label: str, stack: np.ndarray, context, exprs: dict[str, Expr],
                      loop: int) -> None:
    flat = stack.reshape(-1, *stack.shape[2:])
    n = len(flat)
    idx = np.linspace(0, n - 1, min(loop, n)).astype(int)
    print(f"\n{label}: {stack.shape}")
    print(f"{'expression':<34}{'vectorised s':>14}{'loop s (est.)':>15}{'ratio':>8}{'failed':>8}")
    for name, expr in exprs.items():
        vec = timed(lambda e=expr: scalarize_many(e, stack, context))
        one = timed(lambda e=expr: [try_scalarize(e, flat[i], context) for i in idx], 1)
        loop_s = one / len(idx) * n
        failed = scalarize_many(expr, stack, context)[1].mean()
        print(f"{name:<34}{vec:>14.4f}{loop_s:>15.3f}{loop_s / vec:>8.1f}{failed:>8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=int, default=64, help="scan side (default 64)")
    parser.add_argument("--loop", type=int, default=512, help="points timed one by one")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    cube, axis = eels_cube(args.scan, rng)
    peak1 = Call("peak", (Num(1.0),))
    bench_expressions("EELS", cube, axis, {
        "count(peaks)": Call("count", (Ref("peaks"),)),
        "energy(peak(1))": Call("energy", (peak1,)),
        "width(peak(2.5 .. 3.8 eV))": Call("width", (Call("peak", (Win(2.5, 3.8, "eV"),)),)),
        "mean(2.5 .. 3.5 eV)": Call("mean", (Win(2.5, 3.5, "eV"),)),
        "centroid(2.5 .. 3.5 eV)": Call("centroid", (Win(2.5, 3.5, "eV"),)),
        "edge(5 .. 7 eV, background=1 .. 2)": Call(
            "edge", (Win(5.0, 7.0, "eV"),), (("background", Win(1.0, 2.0, "eV")),)),
        "ratio(peak(1), peak(2))": Call("ratio", (peak1, Call("peak", (Num(2.0),)))),
    }, args.loop)

    scan, geometry = dstem_scan(args.scan, rng)
    bench_expressions("4D-STEM", scan, geometry, {
        "com.magnitude": Ref("com.magnitude"),
        "vbf(4 mrad)": Call("vbf", (Num(4.0, "mrad"),)),
        "vadf(5 .. 15 mrad)": Call("vadf", (Win(5.0, 15.0, "mrad"),)),
    }, args.loop)

    print(f"\n{'patches (16 x 16 px)':<34}{'seconds':>14}{'MiB out':>15}")
    for side in (64, 256):
        image = rng.normal(size=(side, side)).astype(np.float32)
        pos = candidates(image.shape)
        seconds = timed(lambda im=image, p=pos: patches(im, p, 16))
        mib = len(pos) * 256 * 4 / 2**20
        print(f"{f'{side} x {side} candidates':<34}{seconds:>14.4f}{mib:>15.1f}")


if __name__ == "__main__":
    main()
