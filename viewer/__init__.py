"""External viewers of a run: terminal watcher, live web dashboard, static run report.

Viewers only subscribe to run documents (docs/design.md §8) and render them; the
dashboard also forwards an operator's pause / resume / stop to the agent's control
address. They import `dkl.bus` and `dkl.dsl`, never the agent or the instruments.
"""

from dkl.viewer.report import write_report
from dkl.viewer.results import ReportError, Results, load_results
from dkl.viewer.state import RUN_TOPICS, Document, Runs, RunState

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
