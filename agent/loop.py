"""The experiment loop: measure → scalarize → journal → publish → train → predict → acquire.

An explicit state machine (`states.py`) drives it; operators steer it through `Control`.
Training and prediction run in a worker thread and overlap the next acquisition: the point
measured at step i is chosen by the model trained on every point up to i-1, so the
microscope only waits when a decision takes longer than an exposure. The beam is blanked
whenever the instrument is not acquiring (the instrument blanks after each exposure; the
loop blanks again on pause, stop, abort and failure).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dkl.agent.acquisition import select_next
from dkl.agent.control import Command, Control
from dkl.agent.decide import Decider, Decision
from dkl.agent.features import candidates, patches
from dkl.agent.record import RunRecord, write_results
from dkl.agent.scalarize import DetectorGeometry, SpectrumAxis, try_scalarize
from dkl.agent.seeding import seed_indices
from dkl.agent.states import TRANSITIONS, RunState, StateMachine
from dkl.agent.stopping import Progress, stop_reason
from dkl.dsl.plan import Plan, Region
from dkl.instruments.protocols import Instrument, InstrumentError

log = logging.getLogger(__name__)

#: Attempts per measurement when the instrument reports a retryable error.
ACQUIRE_ATTEMPTS = 3
#: Least time between two `run.maps` documents (the last maps are always sent).
MAPS_INTERVAL_S = 1.0
#: fresh fits for the map a run leaves; the lowest objective wins (docs/model.md, "The final map")
FINAL_FIT_TRIES = 4


class Recorder(Protocol):
    """Journals a document (fsync) and then publishes it; raises OSError if it can't."""

    def publish(self, topic: str, body: dict[str, Any]) -> Any: ...


@dataclass
class Outcome:
    exit_status: str  # success | stopped | aborted | failed
    reason: str
    num_events: int
    run_dir: Path
    idle_fraction: float = 0.0
    elapsed: float = 0.0
    results: Path | None = None


@dataclass
class _Clock:
    """Microscope busy time against wall time, for the idle fraction.

    Idle time counts from the first exposure on: setting up (survey, patches, building
    the model) happens once per run and is reported as the run's elapsed time instead.
    """

    start: float = field(default_factory=time.monotonic)
    first_exposure: float | None = None
    busy: float = 0.0

    def acquiring(self) -> float:
        now = time.monotonic()
        if self.first_exposure is None:
            self.first_exposure = now
        return now

    def idle_fraction(self) -> float:
        if self.first_exposure is None:
            return 0.0
        total = time.monotonic() - self.first_exposure
        return max(0.0, 1.0 - self.busy / total) if total > 0 else 0.0


class Experiment:
    """One run of a plan on an instrument (see the module docstring)."""

    def __init__(self, plan: Plan, instrument: Instrument, recorder: Recorder, run_dir: Path,
                 seed: int = 0, control: Control | None = None, run_id: str | None = None,
                 resumed: RunRecord | None = None) -> None:
        self.plan = plan
        self.instrument = instrument
        self.recorder = recorder
        self.run_dir = Path(run_dir)
        self.seed = int(seed)
        self.control = control or Control()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.record = resumed or RunRecord()
        self.resumed = resumed is not None
        self.states = StateMachine()
        self.clock = _Clock()
        self.decision: Decision | None = None
        self.trained_on = 0
        self.queue: list[int] = []  # candidate indices to measure before asking the model
        self.excluded: np.ndarray | None = None
        self.writer = _JournalWriter(recorder)
        self.maps_sent_at = -MAPS_INTERVAL_S
        self.maps_version = -1
        self.waited = 0.0  # time the loop last spent waiting for a decision
        self.job: Future[Decision] | None = None  # the decision being computed

    # --- setup ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        desc = self.instrument.describe()
        self.description = desc
        survey = self.instrument.survey()
        self.survey = np.asarray(survey["image"], np.float32)
        self.positions = candidates(self.survey.shape, self.plan.patch_px, self.plan.stride_px,
                                    self.plan.region, self.plan.exclude)
        self.features = patches(self.survey, self.positions, self.plan.patch_px)
        h, w = self.survey.shape
        self.index_of = np.full((h, w), -1, np.int64)
        self.index_of[self.positions[:, 1], self.positions[:, 0]] = np.arange(len(self.positions))
        self.measured = np.zeros(len(self.positions), bool)
        self.excluded = np.zeros(len(self.positions), bool)
        for i in self.record.indices:
            self.measured[i] = True
        if desc.get("modality", self.plan.modality) == "4dstem":
            self.context: Any = DetectorGeometry(float(desc["mrad_per_px"]),
                                                 tuple(desc["center"]))  # type: ignore[arg-type]
        else:
            self.context = SpectrumAxis(np.asarray(desc["energy"], np.float64))
        self.exposure = float(self.plan.exposure_s or desc.get("default_exposure", 0.01))
        rng = np.random.default_rng(self.seed)
        self.rng = rng
        self.queue = [i for i in seed_indices(self.plan.seed, self.positions, rng)
                      if not self.measured[i]]
        self.decider = Decider(self.plan, self.features, self.seed)

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        self.writer.submit(topic, {"run_id": self.run_id, **body})

    @property
    def journal_ok(self) -> bool:
        return self.writer.error is None

    # --- the run -------------------------------------------------------------------------
    def run(self) -> Outcome:
        """Run to a stop condition, an operator's stop/abort, or a failure."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        status, reason = "failed", "did not start"
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkl-decide")
        try:
            self._prepare()
            self.states.move(RunState.RUNNING)
            if self.resumed:  # the journal already holds run.start: one run, one start
                self._publish("run.interruption", {
                    "action": "resume", "who": "agent", "state": "running",
                    "reason": f"continued from the journal ({self.record.count} measurements "
                              "kept)"})
            else:
                self._publish("run.start", self._start_doc())
            status, reason = self._loop(worker)
        except JournalFailure as err:
            status, reason = "failed", str(err)
        except InstrumentError as err:
            status, reason = "failed", f"instrument: {err.code}: {err.message}"
        except Exception as err:  # the run fails cleanly, whatever broke
            log.exception("run %s failed", self.run_id)
            status, reason = "failed", f"{type(err).__name__}: {err}"
        finally:
            self._blank()
            worker.shutdown(wait=True, cancel_futures=True)
        return self._finish(status, reason)

    def _loop(self, worker: ThreadPoolExecutor) -> tuple[str, str]:
        while True:
            self.writer.check()
            outcome = self._handle_commands()
            if outcome:
                return outcome
            self._collect(wait=False)
            reason = stop_reason(self.plan.stop, self._progress())
            if reason:
                return "success", reason
            index = self._choose(worker)
            if index is None:
                return "success", "every candidate has been measured"
            self._submit(worker)
            self._measure(index)

    def _progress(self) -> Progress:
        d = self.decision
        return Progress(
            measurements=self.record.count,
            elapsed_s=time.monotonic() - self.clock.start,
            max_uncertainty=float(np.nanmax(d.std)) if d is not None else None,
            best=self.record.best(self.plan.maximize),
            dose=self.record.total_dose,
        )

    # --- deciding ------------------------------------------------------------------------
    def _submit(self, worker: ThreadPoolExecutor) -> None:
        """Start training on everything measured, unless a job is running or not due."""
        idx, val = self.record.training_data()
        due = len(val) >= 2 and len(val) - self.trained_on >= self.plan.train_every
        if self.job is None and due:
            self.trained_on = len(val)
            self.job = worker.submit(self.decider.decide, idx, val, self.record.failed_indices())

    def _collect(self, wait: bool) -> None:
        if self.job is None or not (wait or self.job.done()):
            return
        job, self.job = self.job, None
        t0 = time.monotonic()
        decision = job.result()
        self.waited = time.monotonic() - t0
        self.decision = decision
        self._publish_model(decision)
        now = time.monotonic()
        if now - self.maps_sent_at >= MAPS_INTERVAL_S:  # maps are conflatable: ~1 per second
            self._publish_maps(decision)
            self.maps_sent_at = now

    def _publish_model(self, decision: Decision) -> None:
        self._publish("run.model", {
            "version": decision.version, "n_train": decision.n_train,
            "loss": decision.fit.get("loss"), "train_time": decision.train_s,
            "steps": decision.fit.get("steps"),
            "hyperparameters": decision.fit.get("hyperparameters", {}),
            "device": decision.fit.get("device", ""), "cold": bool(decision.fit.get("cold")),
        })

    def _final_fit(self, status: str) -> None:
        """Refit from fresh weights on every usable point, best of `FINAL_FIT_TRIES`: the map
        the run leaves.

        The warm-started fits follow the acquisition's path through the data and serve
        the decisions; a fresh fit on all the points maps the sample better (docs/model.md,
        "The final map"). If it fails, the run keeps its last map; an abort, which asks
        for the end now, skips it.
        """
        idx, val = self.record.training_data()
        if status == "aborted" or self.decision is None or len(val) < 2 or not self.journal_ok:
            return
        try:
            self.decision = self.decider.decide(idx, val, self.record.failed_indices(),
                                                restart=True, tries=FINAL_FIT_TRIES)
        except Exception:
            log.exception("run %s: the final fit failed; keeping the last map", self.run_id)
            return
        self._publish_model(self.decision)

    def _publish_maps(self, decision: Decision) -> None:
        self._publish("run.maps", {"version": decision.version, **self._maps(decision)})
        self.maps_version = decision.version

    def _choose(self, worker: ThreadPoolExecutor) -> int | None:
        open_ = ~(self.measured | self.excluded)  # type: ignore[operator]
        while self.queue:
            i = self.queue.pop(0)
            if open_[i]:
                return i
        if not open_.any():
            return None
        n_ok = len(self.record.training_data()[1])
        stale = self.decision is None or self.decision.n_train < n_ok - self.plan.train_every
        if self.job is not None and stale:  # at most one decision behind the data
            self._collect(wait=True)
        if self.decision is None:  # no model yet (too few points, or the first fit is still
            # running): explore at random rather than keep the microscope waiting
            return int(self.rng.choice(np.flatnonzero(open_)))
        recent = np.array(self.record.positions[-5:], np.float64).reshape(-1, 2)
        radius = self.plan.acquire.penalty_px or None
        return select_next(self.decision.scores, ~open_, self.positions, recent, radius)

    # --- measuring -----------------------------------------------------------------------
    def _measure(self, index: int) -> None:
        x, y = (int(v) for v in self.positions[index])
        t_step = time.monotonic()
        if self.control.interrupted.is_set():  # pause --now arrived: do not expose at all
            self.control.interrupted.clear()
            self.queue.insert(0, index)
            return
        measurement = None
        for attempt in range(ACQUIRE_ATTEMPTS):
            try:
                requested = time.time()
                t0 = self.clock.acquiring()
                measurement = self.instrument.acquire(x, y, self.exposure)
                self.clock.busy += time.monotonic() - t0
                break
            except InstrumentError as err:
                if not err.retryable or attempt == ACQUIRE_ATTEMPTS - 1:
                    raise
                log.warning("retrying (%s) at (%d, %d): %s", err.code, x, y, err.message)
        assert measurement is not None
        if self.control.interrupted.is_set():  # pause --now hit this exposure: redo it
            self.control.interrupted.clear()
            self.queue.insert(0, index)
            self._publish("run.interruption", {
                "action": "suspend", "who": "agent", "state": "pausing",
                "reason": f"exposure at ({x}, {y}) interrupted by pause --now; redone on resume",
            })
            return
        t_scal = time.monotonic()
        result = try_scalarize(self.plan.scalarize, np.asarray(measurement["data"]), self.context)
        scalarize_s = time.monotonic() - t_scal
        self.measured[index] = True
        d = self.decision
        timings = {
            "move": max(0.0, measurement["settled_at"] - requested),
            "settle": max(0.0, measurement["exposure_start"] - measurement["settled_at"]),
            "exposure": measurement["exposure_end"] - measurement["exposure_start"],
            "scalarize": scalarize_s,
            "train": d.train_s if d else 0.0,
            "predict": d.predict_s if d else 0.0,
            "acquire": d.acquire_s if d else 0.0,
        }
        timings["step"] = time.monotonic() - t_step + self.waited
        self.waited = 0.0
        self.record.add(index, x, y, result.value, timings, float(measurement.get("dose", 0.0)))
        failure = None if result.ok else {"code": result.failure.code,  # type: ignore[union-attr]
                                          "message": result.failure.message}  # type: ignore[union-attr]
        self._publish("run.event", {
            "index": self.record.count - 1, "candidate": index, "x": x, "y": y,
            "scalar": result.value, "failure": failure, "timings": timings,
            "model_version": d.version if d else 0,
            "acquisition_value": float(d.scores[index]) if d is not None else None,
            "best": self.record.best(self.plan.maximize), "dose": measurement.get("dose", 0.0),
            "next": None,
        })

    # --- operators -----------------------------------------------------------------------
    def _handle_commands(self) -> tuple[str, str] | None:
        while True:
            cmd = self.control.take()
            if cmd is None:
                return None
            outcome = self._apply(cmd)
            if outcome:
                return outcome

    def _apply(self, cmd: Command) -> tuple[str, str] | None:
        state = self.states.state
        doc = {"action": cmd.action, "who": cmd.who, "reason": cmd.reason}
        if cmd.action == "abort":
            self.states.move(RunState.ABORTING)
            self._publish("run.interruption", {**doc, "state": "aborting"})
            return "aborted", cmd.reason or "aborted by the operator"
        if cmd.action == "stop":
            self.states.move(RunState.STOPPING)
            self._publish("run.interruption", {**doc, "state": "stopping"})
            return "stopped", cmd.reason or "stopped by the operator"
        if cmd.action == "pause" and state == RunState.RUNNING:
            self.states.move(RunState.PAUSING)
            self._blank()
            self.states.move(RunState.PAUSED)
            self._publish("run.interruption", {**doc, "state": "paused"})
            return self._paused()
        if cmd.action in ("measure", "exclude", "set"):
            try:
                self._intervene(cmd)
            except (ControlError, KeyError, TypeError, ValueError) as err:
                self._publish("run.interruption", {**doc, "action": "refused",
                                                   "reason": f"{cmd.action}: {err}",
                                                   "state": state.value})
                return None
            self._publish("run.interruption", {**doc, "action": "intervene",
                                               "what": cmd.action, "args": cmd.args,
                                               "state": state.value})
        return None

    def _paused(self) -> tuple[str, str] | None:
        while True:
            cmd = self.control.take(timeout=1.0)
            if cmd is None:
                self._heartbeat()
                continue
            if cmd.action == "resume":
                self.states.move(RunState.RUNNING)
                self._publish("run.interruption", {"action": "resume", "who": cmd.who,
                                                   "reason": cmd.reason, "state": "running"})
                return None
            if cmd.action in ("stop", "abort", "measure", "exclude", "set"):
                outcome = self._apply(cmd)
                if outcome:
                    return outcome

    def _intervene(self, cmd: Command) -> None:
        a = cmd.args
        if cmd.action == "measure":
            x, y = int(a["x"]), int(a["y"])
            h, w = self.index_of.shape
            i = self.index_of[y, x] if 0 <= x < w and 0 <= y < h else -1
            if i < 0:
                raise_control(f"({x}, {y}) is not a candidate position")
            self.queue.insert(0, int(i))
        elif cmd.action == "exclude":
            r = Region(float(a["x0"]), float(a["x1"]), float(a["y0"]), float(a["y1"]))
            px, py = self.positions[:, 0], self.positions[:, 1]
            self.excluded |= (px >= r.x0) & (px <= r.x1) & (py >= r.y0) & (py <= r.y1)  # type: ignore[operator]
        elif "exposure_s" in a:
            exposure = float(a["exposure_s"])
            if not exposure > 0:
                raise_control("exposure_s must be > 0")
            self.exposure = exposure

    # --- ending --------------------------------------------------------------------------
    def _blank(self) -> None:
        try:
            self.instrument.blank()
        except Exception as err:  # a dead instrument: its dead-man's switch blanks it
            log.warning("could not blank the beam: %s", err)

    def _heartbeat(self) -> None:
        try:
            self.instrument.heartbeat()
        except Exception as err:
            log.warning("instrument heartbeat failed: %s", err)

    def _finish(self, status: str, reason: str) -> Outcome:
        state = self.states.state
        final = RunState.FAILED if status == "failed" else RunState.DONE
        if state not in (RunState.DONE, RunState.FAILED):
            self.states.move(final if final in TRANSITIONS[state] else RunState.FAILED)
        self._final_fit(status)
        results = None
        d = self.decision
        maps = {"prediction": d.mean, "uncertainty": d.std, "acquisition": d.scores} if d else {}
        if d is not None and d.version != self.maps_version and self.journal_ok:
            self._publish_maps(d)
        self.writer.flush()
        if self.writer.error is not None and self.writer.error.args[0] not in reason:
            reason += f"; {self.writer.error}"
        if hasattr(self, "survey"):
            try:
                results = write_results(self.run_dir / "results.npz", self.record, self.survey,
                                        self.positions, maps, self.plan.maximize)
            except OSError as err:
                reason += f"; results.npz not written: {err.strerror or err}"
        outcome = Outcome(status, reason, self.record.count, self.run_dir,
                          self.clock.idle_fraction(), time.monotonic() - self.clock.start, results)
        if self.journal_ok:
            self._publish("run.stop", {
                "exit_status": status, "reason": reason, "num_events": self.record.count,
                "idle_fraction": outcome.idle_fraction, "elapsed": outcome.elapsed,
            })
            self.writer.flush()
            if self.writer.error is not None:
                outcome.reason += f"; {self.writer.error}"
        self.writer.close()
        return outcome

    def _start_doc(self) -> dict[str, Any]:
        desc = {k: v for k, v in self.description.items()}
        return {
            "plan_source": self.plan.source, "sha256": self.plan.sha256,
            "plan": self.plan.to_dict(), "instrument": desc, "survey": self.survey,
            "seed": self.seed, "max_measurements": self.plan.max_measurements,
            "candidates": self.positions.astype(np.int32), "time": time.time(),
        }

    def _maps(self, d: Decision) -> dict[str, Any]:
        h, w = self.survey.shape
        out: dict[str, Any] = {}
        for name, values in (("prediction", d.mean), ("uncertainty", d.std),
                             ("acquisition", d.scores)):
            grid = np.full((h, w), np.nan, np.float32)
            grid[self.positions[:, 1], self.positions[:, 0]] = values
            out[name] = grid
        open_ = ~(self.measured | self.excluded)  # type: ignore[operator]
        nxt = int(np.argmax(np.where(open_, d.scores, -np.inf))) if open_.any() else None
        out["next"] = [int(v) for v in self.positions[nxt]] if nxt is not None else None
        return out


class JournalFailure(Exception):
    """The journal could not be written (full disk, unwritable directory)."""


class _JournalWriter:
    """Journals, then publishes, every document in order on its own thread.

    The loop hands documents over and goes on, so the microscope never waits on fsync;
    each document is still on disk before it is published. After the first failure
    nothing more is written (the journal stays a clean prefix of the run) and `check`
    raises it in the loop.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.error: JournalFailure | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkl-journal")

    def submit(self, topic: str, body: dict[str, Any]) -> None:
        self.check()
        self._pool.submit(self._write, topic, body)

    def _write(self, topic: str, body: dict[str, Any]) -> None:
        if self.error is not None:
            return
        try:
            self.recorder.publish(topic, body)
        except OSError as err:
            self.error = JournalFailure(f"cannot write the journal: {err.strerror or err}")

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def flush(self) -> None:
        """Wait until everything handed over so far is written (or has failed)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class ControlError(Exception):
    """An operator command that cannot be carried out (bad position, bad value)."""


def raise_control(message: str) -> None:
    raise ControlError(message)
