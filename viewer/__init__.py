"""External viewers of a run: terminal watcher, live web dashboard, static run report.

Viewers only subscribe to run documents (docs/design.md §8) and render them; the
dashboard also forwards an operator's pause / resume / stop to the agent's control
address. They import `dkl.bus` and `dkl.dsl`, never the agent or the instruments.
"""

from typing import Any

from dkl.viewer.results import ReportError, Results, load_results
from dkl.viewer.state import RUN_TOPICS, Document, Runs, RunState


def __getattr__(name: str) -> Any:
    """`write_report` loads matplotlib; import it only when asked, so CLI start-up stays fast."""
    if name == "write_report":
        from dkl.viewer.report import write_report

        return write_report
    raise AttributeError(f"module 'dkl.viewer' has no attribute {name!r}")

__all__ = [
    "RUN_TOPICS",
    "Document",
    "ReportError",
    "Results",
    "RunState",
    "Runs",
    "load_results",
    "write_report",
]
