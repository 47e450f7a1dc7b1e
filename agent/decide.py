"""One decision: train the deep-kernel GP on what was measured, predict every candidate, score.

Runs in the loop's worker thread, so the control loop and the instrument never wait on
TensorFlow unless the plan needs the newest model. Everything it returns is plain numpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dkl.agent.acquisition import acquire
from dkl.agent.feasibility import SuccessEstimate, weigh_by_success
from dkl.agent.models import DKLModel
from dkl.dsl.plan import Plan

#: Largest training buffer allocated before the data needs it (it still doubles after).
MAX_PREALLOCATED = 512


@dataclass
class Decision:
    """Model output over all candidates, and how long it took."""

    version: int
    n_train: int
    mean: np.ndarray
    std: np.ndarray
    scores: np.ndarray
    p_success: np.ndarray | None = None  #: None until a measurement has failed
    fit: dict[str, Any] = field(default_factory=dict)
    train_s: float = 0.0
    predict_s: float = 0.0
    acquire_s: float = 0.0


class Decider:
    """Owns the model for one run; `decide` is called with all successful points so far."""

    def __init__(self, plan: Plan, features: np.ndarray, seed: int) -> None:
        self.plan = plan
        self.features = features
        # Size the padded training buffer for the whole run up front, so the compiled
        # training step never retraces mid-run (a retrace stalls the loop for ~0.4 s).
        bound = plan.max_measurements or MAX_PREALLOCATED
        capacity = 1 << max(5, (min(bound, MAX_PREALLOCATED) - 1).bit_length())
        self.model = DKLModel(plan.model, features.shape[1], seed, min_capacity=capacity)
        self.model.set_input_normalisation(features)  # from every candidate, not the first few
        self.rng = np.random.default_rng(seed + 7919)
        self.success: SuccessEstimate | None = None  # built at the first failed point

    def decide(self, indices: np.ndarray, values: np.ndarray,
               failed: np.ndarray | None = None, restart: bool = False,
               tries: int = 1) -> Decision:
        """Fit on `features[indices] -> values`, then score every candidate.

        `failed`: candidates measured without a usable scalar. Once there is one, every
        score is weighed by the chance that a measurement there succeeds
        (`dkl.agent.feasibility`), so the beam stops returning to where scalars fail.
        `restart`: fit from fresh weights instead of warm; the run's final map does, keeping
        the best of `tries` fresh fits (`DKLModel.fit`).
        """
        plan = self.plan
        t0 = time.perf_counter()
        report = self.model.fit(self.features[indices], values, restart=restart, tries=tries)
        t1 = time.perf_counter()
        mean, std = self.model.predict(self.features)
        t2 = time.perf_counter()
        best = float(np.max(values) if plan.maximize else np.min(values))
        acq = plan.acquire
        scores = acquire(
            acq.name, mean, std, y_best=best, maximize=plan.maximize, xi=acq.xi, beta=acq.beta,
            rng=self.rng, sampler=lambda r: self.model.thompson_sample(self.features, r),
        )
        p_success = self._p_success(np.asarray(indices), failed)
        if p_success is not None:
            scores = weigh_by_success(scores, p_success)
        t3 = time.perf_counter()
        return Decision(
            version=self.model.version,
            n_train=len(values),
            mean=mean.astype(np.float32),
            std=std.astype(np.float32),
            scores=np.asarray(scores, np.float32),
            p_success=None if p_success is None else p_success.astype(np.float32),
            fit=report.to_dict(),
            train_s=t1 - t0,
            predict_s=t2 - t1,
            acquire_s=t3 - t2,
        )

    def _p_success(self, ok: np.ndarray, failed: np.ndarray | None) -> np.ndarray | None:
        """Success probability of every candidate, or None while nothing has failed."""
        failed = np.asarray([] if failed is None else failed, dtype=np.int64)
        if self.success is None:
            if failed.size == 0:
                return None
            self.success = SuccessEstimate(self.features)
        self.success.add(ok, True)
        self.success.add(failed, False)
        return self.success.probability()
