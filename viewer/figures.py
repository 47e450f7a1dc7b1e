"""PNG figures of a run, drawn with matplotlib's Agg canvas.

Figures are built with `matplotlib.figure.Figure` and `FigureCanvasAgg` directly, never
through `pyplot`, so importing or calling this module changes no process-wide state
(no backend switch, no global figure registry): it is safe inside the agent or a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dkl.viewer.results import TIMING_ORDER

_DPI = 110
#: Colormap per map, matching the web dashboard.
MAP_CMAPS = {
    "prediction": "viridis",
    "uncertainty": "magma",
    "acquisition": "cividis",
    "dose_map": "inferno",
}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, facecolor="white")
    return path


def _image_size(shape: tuple[int, int]) -> tuple[float, float]:
    h, w = shape
    aspect = h / max(w, 1)
    return 6.0, max(2.5, min(9.0, 5.0 * aspect + 0.6))


def _finite_limits(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def survey_figure(
    survey: np.ndarray,
    positions: np.ndarray,
    scalars: np.ndarray,
    path: Path,
    next_point: Sequence[int] | None = None,
) -> Path:
    """The survey with the visited path: points coloured by scalar, order as a faint line."""
    fig = _new_figure(*_image_size(survey.shape))
    ax = fig.add_subplot()
    h, w = survey.shape
    ax.imshow(survey, cmap="gray", extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    n = len(positions)
    if n:
        xs, ys = positions[:, 0], positions[:, 1]
        ax.plot(xs, ys, color="white", alpha=0.35, lw=0.8)
        ok = np.isfinite(scalars)
        limits = _finite_limits(scalars)
        if ok.any() and limits is not None:
            points = ax.scatter(
                xs[ok],
                ys[ok],
                c=scalars[ok],
                cmap="plasma",
                vmin=limits[0],
                vmax=limits[1],
                s=22,
                edgecolors="black",
                linewidths=0.4,
                zorder=3,
            )
            fig.colorbar(points, ax=ax, label="scalar", shrink=0.85)
        if (~ok).any():
            ax.scatter(xs[~ok], ys[~ok], marker="x", color="red", s=25, label="failed", zorder=3)
        step = max(1, n // 25)
        for i in range(0, n, step):
            ax.annotate(
                str(i),
                (xs[i], ys[i]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=6,
                color="white",
                alpha=0.6,
            )
        ax.scatter(
            [xs[-1]],
            [ys[-1]],
            marker="o",
            s=110,
            facecolors="none",
            edgecolors="cyan",
            linewidths=1.6,
            label=f"last (#{n - 1})",
            zorder=4,
        )
    if next_point is not None:
        ax.scatter(
            [next_point[0]],
            [next_point[1]],
            marker="*",
            s=160,
            color="lime",
            edgecolors="black",
            linewidths=0.6,
            label="next",
            zorder=5,
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(f"Survey and visited path ({n} measurements)")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    if n or next_point is not None:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return _save(fig, path)


def map_figure(
    values: np.ndarray, name: str, title: str, positions: np.ndarray, path: Path
) -> Path:
    """One map (prediction, uncertainty, acquisition or dose) with the measured points."""
    fig = _new_figure(*_image_size(values.shape))
    ax = fig.add_subplot()
    h, w = values.shape
    limits = _finite_limits(values)
    cmap = matplotlib.colormaps[MAP_CMAPS.get(name, "viridis")].with_extremes(bad="#dddddd")
    image = ax.imshow(
        np.ma.masked_invalid(values),
        cmap=cmap,
        interpolation="nearest",
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        vmin=None if limits is None else limits[0],
        vmax=None if limits is None else limits[1],
    )
    fig.colorbar(image, ax=ax, shrink=0.85)
    if len(positions):
        ax.scatter(
            positions[:, 0],
            positions[:, 1],
            s=6,
            color="white",
            edgecolors="black",
            linewidths=0.3,
            alpha=0.8,
        )
    ax.set_title(title)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    return _save(fig, path)


def map_image(values: np.ndarray, name: str, path: Path) -> Path:
    """The map at native resolution, one PNG pixel per survey pixel (NaN is transparent)."""
    limits = _finite_limits(values) or (0.0, 1.0)
    cmap = matplotlib.colormaps[MAP_CMAPS.get(name, "viridis")].with_extremes(bad=(0, 0, 0, 0))
    scaled = (values - limits[0]) / (limits[1] - limits[0])
    rgba = cmap(np.ma.masked_invalid(scaled), bytes=True)
    PIL.Image.fromarray(rgba).save(path, format="PNG")
    return path


def curves_figure(
    scalars: np.ndarray, failed: np.ndarray, best_so_far: np.ndarray, path: Path
) -> Path:
    """Scalar per step and the best value found so far."""
    fig = _new_figure(7.0, 3.4)
    ax = fig.add_subplot()
    steps = np.arange(len(scalars))
    ok = np.isfinite(scalars) & ~failed
    ax.plot(steps[ok], scalars[ok], "o", ms=3.5, color="tab:blue", label="scalar")
    ax.plot(steps, best_so_far, "-", color="tab:orange", lw=1.8, label="best so far")
    if failed.any():
        for i in steps[failed]:
            ax.axvline(i, color="red", alpha=0.3, lw=0.8)
        ax.plot([], [], color="red", alpha=0.5, label="failed")
    ax.set_xlabel("step")
    ax.set_ylabel("scalar")
    ax.set_title("Scalar per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def latency_figure(
    timings: Mapping[str, np.ndarray], idle_fraction: float | None, path: Path
) -> Path:
    """Stacked time per step by phase; whatever the phases miss of `step` shows as `other`."""
    fig = _new_figure(7.0, 3.6)
    ax = fig.add_subplot()
    names = [k for k in TIMING_ORDER if k in timings]
    names += sorted(k for k in timings if k not in TIMING_ORDER and k != "step")
    n = len(next(iter(timings.values()))) if timings else 0
    steps = np.arange(n)
    bottom = np.zeros(n)
    colors = matplotlib.colormaps["tab10"]
    for i, name in enumerate(names):
        part = np.nan_to_num(timings[name])
        ax.bar(steps, part, bottom=bottom, width=0.85, color=colors(i % 10), label=name)
        bottom = bottom + part
    if "step" in timings:
        other = np.clip(np.nan_to_num(timings["step"]) - bottom, 0.0, None)
        if other.any():
            ax.bar(steps, other, bottom=bottom, width=0.85, color="lightgray", label="other")
    title = "Latency per step"
    if idle_fraction is not None:
        title += f" — microscope idle {idle_fraction:.0%} of the time"
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    if names:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def loss_figure(versions: Sequence[int], losses: Sequence[float], path: Path) -> Path:
    """Training loss of each model version."""
    fig = _new_figure(7.0, 3.0)
    ax = fig.add_subplot()
    ax.plot(list(versions), list(losses), "o-", ms=3)
    ax.set_xlabel("model version")
    ax.set_ylabel("loss")
    ax.set_title("Model training loss")
    ax.grid(alpha=0.3)
    return _save(fig, path)
