"""Pure pieces of the run: the state table, stop conditions, seed points, the record."""

from __future__ import annotations

import numpy as np
import pytest

from dkl.agent.record import RunRecord, write_results
from dkl.agent.seeding import seed_indices
from dkl.agent.states import TERMINAL, TRANSITIONS, IllegalTransition, RunState, StateMachine
from dkl.agent.stopping import Progress, stop_reason
from dkl.dsl.plan import Seeding, StopWhen


def test_terminal_states_have_no_way_out_and_every_state_can_fail():
    for state in TERMINAL:
        assert not TRANSITIONS[state]
    for state, targets in TRANSITIONS.items():
        if state not in TERMINAL:
            assert RunState.FAILED in targets


def test_illegal_transition_is_refused_and_state_kept():
    sm = StateMachine()
    sm.move(RunState.RUNNING)
    with pytest.raises(IllegalTransition, match="running to paused"):
        sm.move(RunState.PAUSED)
    assert sm.state == RunState.RUNNING
    sm.move(RunState.PAUSING)
    sm.move(RunState.PAUSED)
    sm.move(RunState.RUNNING)
    sm.move(RunState.DONE)
    with pytest.raises(IllegalTransition):
        sm.move(RunState.RUNNING)


def progress(**kw):
    base = {"measurements": 0, "elapsed_s": 0.0, "max_uncertainty": None, "best": None,
            "dose": 0.0}
    return Progress(**{**base, **kw})


def test_stop_conditions():
    stop = (StopWhen("after", 10.0), StopWhen("uncertainty", 0.05, "<"),
            StopWhen("best", 3.5, ">"), StopWhen("dose", 1e6, ">"), StopWhen("time", 60.0))
    assert stop_reason(stop, progress(measurements=9)) is None
    assert "10 measurements" in stop_reason(stop, progress(measurements=10))
    assert "uncertainty" in stop_reason(stop, progress(max_uncertainty=0.01))
    assert stop_reason(stop, progress(max_uncertainty=0.05)) is None
    assert "best" in stop_reason(stop, progress(best=3.6))
    assert "dose" in stop_reason(stop, progress(dose=2e6))
    assert "time" in stop_reason(stop, progress(elapsed_s=61.0))


def test_seed_points():
    positions = np.array([(x, y) for y in range(10) for x in range(20)])
    rng = np.random.default_rng(0)
    random = seed_indices(Seeding("random", 7), positions, rng)
    assert len(set(random)) == 7
    grid = seed_indices(Seeding("grid", 8), positions, rng)
    assert len(set(grid)) == 8
    xs = positions[grid][:, 0]
    assert xs.min() < 6 and xs.max() > 13  # spread over the field
    at = seed_indices(Seeding("at", 2, ((3.0, 4.0), (19.0, 9.0))), positions, rng)
    assert [tuple(positions[i]) for i in at] == [(3, 4), (19, 9)]
    assert len(seed_indices(Seeding("random", 500), positions, rng)) == 200


def test_results_file(tmp_path):
    record = RunRecord()
    record.add(0, 1, 2, 5.0, {"step": 0.1}, 2.0)
    record.add(5, 3, 0, None, {"step": 0.2}, 2.0)
    record.add(7, 1, 2, 7.0, {"step": 0.3}, 1.0)
    survey = np.zeros((4, 5), np.float32)
    cand = np.array([(x, y) for y in range(4) for x in range(5)])
    mean = np.arange(20, dtype=np.float32)
    path = write_results(tmp_path / "results.npz", record, survey, cand,
                         {"prediction": mean, "uncertainty": mean, "acquisition": mean}, True)
    r = np.load(path)
    assert r["positions"].tolist() == [[1, 2], [3, 0], [1, 2]]
    assert np.isnan(r["scalars"][1]) and r["failed"].tolist() == [False, True, False]
    assert r["best_so_far"].tolist() == [5.0, 5.0, 7.0]
    assert r["dose_map"][2, 1] == 3.0 and r["dose_map"][0, 3] == 2.0
    assert r["prediction"][3, 4] == 19 and r["prediction"].shape == (4, 5)
    assert r["timing_step"].tolist() == [0.1, 0.2, 0.3]
