"""The fold of run documents, the browser wire format, and the package's public surface."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import numpy as np

import dkl.viewer
from dkl.viewer import Document, Runs
from dkl.viewer.testing import fake_run_documents
from dkl.viewer.wire import doc_message, encode_value, state_documents

VIEWER_DIR = Path(dkl.viewer.__file__).parent


def test_every_public_name_resolves() -> None:
    for name in dkl.viewer.__all__:
        assert getattr(dkl.viewer, name) is not None


def test_viewer_imports_only_the_bus_and_the_dsl() -> None:
    for path in VIEWER_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("dkl"):
                    assert name.split(".")[1] in ("bus", "dsl", "viewer"), f"{path.name}: {name}"


def test_state_ignores_duplicates_and_reports_missing_events() -> None:
    runs = Runs()
    docs = list(fake_run_documents(n=5))
    events = [d for d in docs if d.topic == "run.event"]
    assert runs.apply(docs[0]) is not None
    assert runs.apply(docs[0]) is None  # duplicate start
    runs.apply(events[0])
    runs.apply(events[3])
    run = runs.current
    assert run is not None
    assert run.missing == [1, 2]
    runs.apply(events[1])
    runs.apply(events[2])
    assert run.missing == [] and run.num_events == 4
    assert run.next_point == tuple(events[3].body["next"])
    assert runs.apply(Document("instrument.status", {"run_id": "x"})) is None


def test_older_maps_never_replace_newer_ones() -> None:
    runs = Runs()
    docs = list(fake_run_documents(n=3))
    maps = [d for d in docs if d.topic == "run.maps"]
    runs.apply(docs[0])
    runs.apply(maps[2])
    assert runs.apply(maps[0]) is None
    assert runs.current is not None and runs.current.maps is not None
    assert runs.current.maps["version"] == 3


def test_arrays_travel_as_base64_float32_with_nan() -> None:
    values = np.array([[1.5, np.nan], [3.0, -2.0]], dtype=np.float64)
    encoded = encode_value({"a": values, "f": float("nan"), "n": np.int64(3)})
    raw = np.frombuffer(base64.b64decode(encoded["a"]["__array__"]), dtype="<f4").reshape(2, 2)
    np.testing.assert_array_equal(raw, values.astype(np.float32))
    assert encoded["a"]["shape"] == [2, 2] and encoded["f"] is None and encoded["n"] == 3


def test_state_documents_rebuild_the_run_with_only_the_latest_maps() -> None:
    runs = Runs()
    for doc in fake_run_documents(n=4):
        runs.apply(doc)
    run = runs.current
    assert run is not None
    topics = [d.topic for d in state_documents(run)]
    assert topics.count("run.maps") == 1 and topics.count("run.event") == 4
    assert topics[0] == "run.start" and topics[-1] == "run.stop"
    rebuilt = Runs()
    for doc in state_documents(run):
        rebuilt.apply(doc)
    assert rebuilt.current is not None and rebuilt.current.ordered_events() == run.ordered_events()
    json.loads(doc_message(state_documents(run)[0]))  # strict JSON


def test_a_long_lived_viewer_forgets_old_runs() -> None:
    runs = Runs(keep=2)
    for name in ("a", "b", "c"):
        runs.apply(next(fake_run_documents(n=1, run_id=name)))
    assert list(runs.runs) == ["b", "c"] and runs.current is runs.runs["c"]
