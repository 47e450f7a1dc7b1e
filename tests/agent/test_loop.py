"""The experiment loop in-process: a simulated microscope, the real model, a journal."""

from __future__ import annotations

import errno
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from dkl.agent.control import Command, Control
from dkl.agent.decide import Decider
from dkl.agent.journal import open_recorder, read_journal
from dkl.agent.loop import Experiment
from dkl.agent.states import TRANSITIONS, RunState
from dkl.bus import read_log
from dkl.dsl import compile_source
from dkl.instruments.datasets import load_builtin
from dkl.instruments.faults import Faults
from dkl.instruments.sim import SimMicroscope

PLAN = ("scalarize peak(3 eV .. 4.5 eV); acquire EI; seed random 4; "
        "model dkl hidden=[16] steps=20; stop after {n}")


def make_plan(n: int = 12, text: str = PLAN):
    result = compile_source(text.format(n=n))
    assert result.plan is not None, result.diagnostics
    return result.plan


@pytest.fixture(scope="module")
def dataset():
    return load_builtin("plasmonic", seed=0, size=24)


def run(tmp_path: Path, dataset, n: int = 12, faults: Faults | None = None,
        control: Control | None = None, text: str = PLAN, recorder=None, resumed=None):
    sim = SimMicroscope(dataset, speed=0, noise="poisson", faults=faults)
    recorder = recorder or open_recorder(tmp_path, None)
    exp = Experiment(make_plan(n, text), sim, recorder, tmp_path, seed=3, control=control,
                     resumed=resumed)
    try:
        return exp, exp.run(), sim
    finally:
        recorder.close()


class Tap:
    """A recorder that shows each document to `see` (a test's hand on the controls)."""

    def __init__(self, inner, see) -> None:
        self.inner, self.see = inner, see

    def publish(self, topic, body):
        self.see(topic, body)
        return self.inner.publish(topic, body)

    def close(self):
        self.inner.close()


def topics(run_dir: Path) -> list[str]:
    return [m.topic for m in read_log(run_dir / "journal.log")]


def test_run_measures_the_planned_points_and_writes_results(tmp_path, dataset):
    _exp, outcome, sim = run(tmp_path, dataset)
    assert outcome.exit_status == "success", outcome.reason
    assert outcome.num_events == 12
    docs = topics(tmp_path)
    assert docs[0] == "run.start" and docs[-1] == "run.stop"
    assert docs.count("run.event") == 12 and docs.count("run.stop") == 1
    models = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.model"]
    assert models and all(re.fullmatch(r"(CPU|GPU):\d+", m["device"]) for m in models)
    seqs = [m.seq for m in read_log(tmp_path / "journal.log")]
    assert seqs == list(range(len(seqs)))  # gap-free
    results = np.load(outcome.results)
    positions = results["positions"]
    assert positions.shape == (12, 2)
    assert len({tuple(p) for p in positions}) == 12  # no point measured twice
    assert results["prediction"].shape == dataset.shape
    assert np.isfinite(results["prediction"]).all()
    assert sim.status()["blanked"]


def test_the_map_a_run_leaves_comes_from_a_fresh_fit_on_every_point(tmp_path, dataset):
    _exp, outcome, _ = run(tmp_path, dataset)
    docs = list(read_log(tmp_path / "journal.log"))
    models = [m.body for m in docs if m.topic == "run.model"]
    events = [m.body for m in docs if m.topic == "run.event"]
    final = models[-1]
    assert final["cold"] and final["n_train"] == len(events) == 12
    assert not any(m["cold"] for m in models[1:-1])  # warm starts in between
    maps = [m.body for m in docs if m.topic == "run.maps"]
    assert maps[-1]["version"] == final["version"]
    results = np.load(outcome.results)
    np.testing.assert_array_equal(results["prediction"], maps[-1]["prediction"])


def test_a_failing_final_fit_keeps_the_last_map(tmp_path, dataset, monkeypatch):
    decide = Decider.decide

    def no_restart(self, indices, values, failed=None, restart=False, tries=1):
        if restart:
            raise FloatingPointError("Cholesky failed")
        return decide(self, indices, values, failed)

    monkeypatch.setattr(Decider, "decide", no_restart)
    _exp, outcome, _ = run(tmp_path, dataset)
    assert outcome.exit_status == "success", outcome.reason
    docs = list(read_log(tmp_path / "journal.log"))
    models = [m.body for m in docs if m.topic == "run.model"]
    maps = [m.body for m in docs if m.topic == "run.maps"]
    assert not models[-1]["cold"] and maps[-1]["version"] == models[-1]["version"]
    assert np.isfinite(np.load(outcome.results)["prediction"]).all()


def test_an_abort_ends_without_the_final_fit(tmp_path, dataset):
    control = Control()

    def see(topic, body):
        if topic == "run.event" and body["index"] == 6:
            control.send(Command("abort", reason="now"))

    _exp, outcome, _ = run(tmp_path, dataset, n=30, control=control,
                           recorder=Tap(open_recorder(tmp_path, None), see))
    assert outcome.exit_status == "aborted"
    models = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.model"]
    assert models and not models[-1]["cold"]


def test_nan_spectra_are_failures_not_training_data(tmp_path, dataset, monkeypatch):
    calls: list[tuple[int, list[int]]] = []  # (points trained on, failed candidates passed)
    decide = Decider.decide

    def spy(self, indices, values, failed=None, restart=False, tries=1):
        calls.append((len(indices), sorted(int(i) for i in failed)))
        return decide(self, indices, values, failed, restart, tries)

    monkeypatch.setattr(Decider, "decide", spy)
    # 0.5: which points fail depends on the path the model takes; 10 clean draws would be
    # a 1-in-1000 chance (at 0.3 one model's path drew none)
    _exp, outcome, _ = run(tmp_path, dataset, n=10, faults=Faults(nan_rate=0.5))
    assert outcome.exit_status == "success"
    events = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.event"]
    failed = [e for e in events if e["failure"] is not None]
    assert failed, "the fault rate should have produced NaN spectra"
    assert all(e["scalar"] is None for e in failed)
    assert all(e["failure"]["code"] for e in failed)
    models = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.model"]
    ok = sum(1 for e in events if e["scalar"] is not None)
    assert max(m["n_train"] for m in models) <= ok
    # every decision got exactly the points measured before it, failed ones apart
    assert calls
    for n_ok, passed in calls:
        prefix = events[: n_ok + len(passed)]
        assert sum(e["scalar"] is not None for e in prefix) == n_ok
        assert sorted(e["candidate"] for e in prefix if e["failure"] is not None) == passed


def test_dead_instrument_fails_the_run_cleanly(tmp_path, dataset):
    exp, outcome, _sim = run(tmp_path, dataset, n=20, faults=Faults(die_after=7))
    assert outcome.exit_status == "failed"
    assert "instrument" in outcome.reason
    docs = topics(tmp_path)
    assert docs.count("run.event") == 7 and docs[-1] == "run.stop"
    assert exp.states.state == RunState.FAILED


def test_full_disk_stops_the_run_with_the_reason(tmp_path, dataset):
    class FullDisk:
        def __init__(self, inner, fail_after: int) -> None:
            self.inner, self.left = inner, fail_after

        def publish(self, topic, body):
            if self.left == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.left -= 1
            return self.inner.publish(topic, body)

        def close(self):
            self.inner.close()

    recorder = FullDisk(open_recorder(tmp_path, None), fail_after=9)
    _exp, outcome, sim = run(tmp_path, dataset, n=30, recorder=recorder)
    assert outcome.exit_status == "failed"
    assert "No space left on device" in outcome.reason
    assert sim.status()["blanked"]
    # what was journaled is intact and readable
    assert read_log(tmp_path / "journal.log")[0].topic == "run.start"


def test_operator_commands_follow_legal_transitions(tmp_path, dataset):
    control = Control()
    measured: list[tuple[int, int]] = []
    target: list[tuple[int, int]] = []

    def see(topic, body):
        if topic == "run.event":
            measured.append((body["x"], body["y"]))
        if topic == "run.event" and body["index"] == 3:
            target.append(next(p for p in [(0, 0), (23, 23), (0, 23)] if p not in measured))
            x, y = target[0]
            control.send(Command("measure", args={"x": x, "y": y}))
            control.send(Command("pause"))
        if topic == "run.interruption" and body["state"] == "paused":
            threading.Thread(target=control.send, args=(Command("resume"),)).start()
        if topic == "run.event" and body["index"] == 8:
            control.send(Command("stop", reason="enough"))

    exp, outcome, sim = run(tmp_path, dataset, n=30, control=control,
                            recorder=Tap(open_recorder(tmp_path, None), see))
    assert outcome.exit_status == "stopped" and outcome.reason == "enough"
    for old, new in exp.states.history:
        assert new in TRANSITIONS[old]
    events = [m.body for m in read_log(tmp_path / "journal.log") if m.topic == "run.event"]
    # the operator's point is measured at the next step boundary after the command
    assert target[0] in [(e["x"], e["y"]) for e in events[4:6]]
    actions = [m.body["action"] for m in read_log(tmp_path / "journal.log")
               if m.topic == "run.interruption"]
    assert actions == ["intervene", "pause", "resume", "stop"]
    assert topics(tmp_path).count("run.stop") == 1
    assert sim.status()["blanked"]


def test_resume_continues_without_remeasuring(tmp_path, dataset):
    _exp, _first, _ = run(tmp_path, dataset, n=6)
    state = read_journal(tmp_path)
    assert state.record.count == 6
    # pretend the run was killed before its end: drop run.stop by continuing the stream
    recorder = open_recorder(tmp_path, None, epoch=state.epoch, first_seq=state.next_seq)
    _exp2, second, _ = run(tmp_path, dataset, n=14, recorder=recorder, resumed=state.record)
    assert second.exit_status == "success"
    messages = read_log(tmp_path / "journal.log")
    assert [m.seq for m in messages] == list(range(len(messages)))
    positions = [(m.body["x"], m.body["y"]) for m in messages if m.topic == "run.event"]
    assert len(positions) == 14 and len(set(positions)) == 14
