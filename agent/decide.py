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

    def decide(self, indices: np.ndarray, values: np.ndarray) -> Decision:
        """Fit on `features[indices] -> values`, then score every candidate."""
        plan = self.plan
        t0 = time.perf_counter()
        report = self.model.fit(self.features[indices], values)
        t1 = time.perf_counter()
        mean, std = self.model.predict(self.features)
        t2 = time.perf_counter()
        best = float(np.max(values) if plan.maximize else np.min(values))
        acq = plan.acquire
        scores = acquire(
            acq.name, mean, std, y_best=best, maximize=plan.maximize, xi=acq.xi, beta=acq.beta,
            rng=self.rng, sampler=lambda r: self.model.thompson_sample(self.features, r),
        )
        t3 = time.perf_counter()
        return Decision(
            version=self.model.version,
            n_train=len(values),
            mean=mean.astype(np.float32),
            std=std.astype(np.float32),
            scores=np.asarray(scores, np.float32),
            fit=report.to_dict(),
            train_s=t1 - t0,
            predict_s=t2 - t1,
            acquire_s=t3 - t2,
        )
