"""`dkl report RUN_DIR`: a static HTML page and PNG figures of a finished run.

Inputs follow the run-directory contract (docs/design.md §8): `results.npz` (required),
`plan.dkl` and `journal.log` (each optional; the journal gives the run's start, stop,
model updates and the next point). Outputs go into the run directory itself:
`report.html`, which references `figures/*.png` by relative path so the folder can be
copied or opened offline.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dkl.viewer import figures
from dkl.viewer.results import TIMING_ORDER, ReportError, Results, load_results
from dkl.viewer.state import RunState

MAP_TITLES = {
    "prediction": "Prediction (mean)",
    "uncertainty": "Uncertainty (std)",
    "acquisition": "Acquisition",
    "dose_map": "Dose",
}


@dataclass(frozen=True)
class JournalInfo:
    """What the journal adds to the arrays: start, stop and model documents."""

    run: RunState | None
    error: str | None = None


def read_journal_info(path: Path) -> JournalInfo:
    """Fold `journal.log` into a `RunState`; a missing or bad journal is noted, not fatal."""
    if not path.is_file():
        return JournalInfo(run=None)
    try:
        from dkl.viewer.busio import read_journal

        run: RunState | None = None
        for doc in read_journal(path):
            if not doc.topic.startswith("run."):
                continue
            if run is None:
                run = RunState(run_id=str(doc.body.get("run_id", "")))
            run.apply(doc)
        return JournalInfo(run=run)
    except Exception as err:  # a damaged journal must not prevent the report
        return JournalInfo(run=None, error=f"{type(err).__name__}: {err}")


def write_figures(results: Results, run: RunState | None, out: Path) -> dict[str, Path]:
    """Draw every figure into `out`; returns name -> PNG path."""
    out.mkdir(parents=True, exist_ok=True)
    # where the agent would have measured next: only meaningful for an unfinished run
    next_point = run.next_point if run is not None and not run.finished else None
    made = {
        "survey": figures.survey_figure(
            results.survey, results.positions, results.scalars, out / "survey.png", next_point
        )
    }
    for name, title in MAP_TITLES.items():
        values = getattr(results, name)
        made[name] = figures.map_figure(values, name, title, results.positions, out / f"{name}.png")
        made[f"{name}_pixels"] = figures.map_image(values, name, out / f"{name}_pixels.png")
    made["curves"] = figures.curves_figure(
        results.scalars, results.failed, results.best_so_far, out / "curves.png"
    )
    made["latency"] = figures.latency_figure(
        results.timings, _idle_fraction(results, run), out / "latency.png"
    )
    if run is not None and run.models:
        models = [m for m in run.models if _finite(m.get("loss"))]
        if models:
            made["loss"] = figures.loss_figure(
                [int(m.get("version", i)) for i, m in enumerate(models)],
                [float(m["loss"]) for m in models],
                out / "loss.png",
            )
    return made


def write_report(run_dir: Path) -> Path:
    """Write `RUN_DIR/report.html` and `RUN_DIR/figures/*.png`; returns the HTML path.

    Raises:
        ReportError: the directory or its `results.npz` is missing or malformed.

    Example:
        >>> write_report(Path("runs/2026-11-25T10-00-00"))  # doctest: +SKIP
        PosixPath('runs/2026-11-25T10-00-00/report.html')
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory")
    results = load_results(run_dir / "results.npz")
    plan_path = run_dir / "plan.dkl"
    plan_source = (
        plan_path.read_text(encoding="utf-8", errors="replace") if plan_path.is_file() else None
    )
    journal = read_journal_info(run_dir / "journal.log")
    if plan_source is None and journal.run is not None and journal.run.start is not None:
        plan_source = journal.run.start.get("plan_source")
    made = write_figures(results, journal.run, run_dir / "figures")
    page = render_html(
        results, journal, plan_source, {k: p.relative_to(run_dir) for k, p in made.items()}
    )
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# --- HTML -----------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _idle_fraction(results: Results, run: RunState | None) -> float | None:
    if run is not None and run.stop is not None and _finite(run.stop.get("idle_fraction")):
        return float(run.stop["idle_fraction"])
    return results.idle_fraction()


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else "—"
    return str(value)


def _summary_rows(results: Results, journal: JournalInfo) -> list[tuple[str, str]]:
    run = journal.run
    start = (run.start if run else None) or {}
    stop = (run.stop if run else None) or {}
    best = results.best_so_far[-1] if results.num else None
    idle = _idle_fraction(results, run)
    started = start.get("time")
    rows = [
        ("Run", start.get("run_id") or stop.get("run_id") or "—"),
        ("Exit status", stop.get("exit_status", "unknown (no run.stop in the journal)")),
        ("Reason", stop.get("reason", "—")),
        (
            "Started",
            dt.datetime.fromtimestamp(float(started), dt.timezone.utc).isoformat(timespec="seconds")
            if _finite(started)
            else "—",
        ),
        ("Elapsed", f"{float(stop['elapsed']):.1f} s" if _finite(stop.get("elapsed")) else "—"),
        (
            "Measurements",
            f"{results.num}"
            + (f" of at most {start['max_measurements']}" if start.get("max_measurements") else ""),
        ),
        ("Failed points", str(int(results.failed.sum()))),
        ("Best scalar", _fmt(None if best is None else float(best))),
        ("Microscope idle", f"{idle:.1%}" if idle is not None else "—"),
        ("Survey", f"{results.shape[0]} × {results.shape[1]} px"),
        ("Seed", _fmt(start.get("seed"))),
        ("Model device", _model_device(run)),
        ("Plan sha256", start.get("sha256", "—")),
    ]
    if journal.error:
        rows.append(("Journal", f"unreadable: {journal.error}"))
    return [(k, str(v)) for k, v in rows]


def _model_device(run: RunState | None) -> str:
    """Where TensorFlow trained the model (`CPU:0`, `GPU:0`), from the last model update."""
    devices = [m.get("device") for m in (run.models if run else []) if m.get("device")]
    return str(devices[-1]) if devices else "—"


def _timings_table(results: Results) -> str:
    names = [k for k in (*TIMING_ORDER, "step") if k in results.timings]
    names += sorted(k for k in results.timings if k not in names)
    if not names or results.num == 0:
        return "<p>No timings recorded.</p>"
    step_total = float(np.nansum(results.timings.get("step", np.zeros(1))))
    rows = []
    for name in names:
        t = results.timings[name]
        finite = t[np.isfinite(t)]
        if finite.size == 0:
            continue
        share = f"{np.sum(finite) / step_total:.1%}" if step_total > 0 and name != "step" else ""
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{np.mean(finite):.4f}</td>"
            f"<td>{np.median(finite):.4f}</td><td>{np.percentile(finite, 95):.4f}</td>"
            f"<td>{np.sum(finite):.3f}</td><td>{share}</td></tr>"
        )
    return (
        "<table><tr><th>phase</th><th>mean (s)</th><th>median (s)</th><th>p95 (s)</th>"
        "<th>total (s)</th><th>share of step</th></tr>" + "".join(rows) + "</table>"
    )


def _measurements_table(results: Results) -> str:
    step = results.timings.get("step")
    rows = []
    for i in range(results.num):
        x, y = results.positions[i]
        scalar = "failed" if results.failed[i] else _fmt(float(results.scalars[i]))
        latency = _fmt(float(step[i])) if step is not None else "—"
        rows.append(
            f"<tr><td>{i}</td><td>{x}</td><td>{y}</td><td>{scalar}</td>"
            f"<td>{_fmt(float(results.best_so_far[i]))}</td><td>{latency}</td></tr>"
        )
    return (
        "<table><tr><th>#</th><th>x</th><th>y</th><th>scalar</th><th>best so far</th>"
        "<th>step (s)</th></tr>" + "".join(rows) + "</table>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;font-size:90%}figure{display:inline-block;margin:.5em;vertical-align:top}
img{max-width:520px}pre{background:#f5f5f5;padding:1em;overflow-x:auto}
.status-success{color:#1a7f37}.status-failed,.status-aborted{color:#c0392b}
"""


def render_html(
    results: Results, journal: JournalInfo, plan_source: str | None, figs: dict[str, Path]
) -> str:
    """The report page; `figs` maps figure names to paths relative to the run directory."""
    summary = _summary_rows(results, journal)
    status = dict(summary)["Exit status"]
    title = f"dkl run report — {dict(summary)['Run']}"

    def img(name: str, caption: str) -> str:
        if name not in figs:
            return ""
        src = html.escape(figs[name].as_posix())
        text = html.escape(caption)
        return f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption></figure>'

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>Exit status: <b class='status-{html.escape(status)}'>{html.escape(status)}</b></p>",
        "<table>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary
        )
        + "</table>",
        "<h2>Survey and path</h2>",
        img("survey", "Survey with the visited path"),
        "<h2>Maps</h2>",
        *(img(name, title) for name, title in MAP_TITLES.items()),
        "<h2>Progress</h2>",
        img("curves", "Scalar per step and best so far"),
        img("loss", "Model loss"),
        "<h2>Latency</h2>",
        img("latency", "Latency per step"),
        _timings_table(results),
        "<h2>Plan</h2>",
        f"<pre>{html.escape(plan_source)}</pre>" if plan_source else "<p>No plan source found.</p>",
        f"<h2>Measurements</h2><details><summary>{results.num} measurements</summary>",
        _measurements_table(results),
        "</details>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
