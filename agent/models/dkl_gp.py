"""The deep-kernel Gaussian process that decides where the beam goes next.

A tf-keras MLP maps a (normalised) patch to a low-dimensional embedding; a
`tfp.math.psd_kernels` kernel on the embedding defines a `tfp.distributions.GaussianProcess`
trained on the exact marginal likelihood with Adam. Everything hot is a `tf.function`
that is traced once per run: training arrays live in fixed-capacity padded buffers whose
padded rows are marginalised out (`is_missing`), the capacity doubles when it fills (the
only retrace), and prediction runs in fixed-size batches through a function with a
shape-polymorphic signature. Prediction keeps only the diagonal variance, so memory is
O(candidates), never O(candidates^2).

With `ModelSpec.linear = K > 0` the kernel gains a linear term on the patch's first K
principal components, k = k_deep(z, z') + (σ_l² / K)·(Px)·(Px'): a map that follows the
survey brightness is linear in the patch, which a few dozen points teach a small MLP poorly.

Example:
    >>> model = DKLModel(ModelSpec(), input_dim=256, seed=0)
    >>> report = model.fit(X_train, y_train, time_budget_s=0.5)
    >>> mean, std = model.predict(X_candidates)
    >>> state = model.get_state()          # plain numpy arrays and scalars, msgpack-able
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from dkl.agent.models._cuda import unused_gpu
from dkl.agent.models._tfcommon import (
    FitReport,
    adam_update,
    all_finite,
    as_array,
    build_mlp,
    cross_covariance,
    device_of,
    draw_fourier_features,
    full_precision_matmuls,
    gaussian_nll,
    glorot_weights,
    make_kernel,
    neg_log_prior,
    np_dtype,
    softplus_inverse,
    validate_spec,
)
from dkl.dsl.plan import ModelSpec

__all__ = ["DKLModel", "FitReport"]

STATE_FORMAT = "dkl.DKLModel/1"
PCA_ROWS = 4096  #: rows of the inputs the principal axes of the linear term are taken from
psd = tfp.math.psd_kernels


def principal_projection(x: np.ndarray, shift: np.ndarray, scale: float, k: int,
                         rows: int = PCA_ROWS) -> np.ndarray:
    """(d, k) projection onto the first k principal axes of the normalised inputs.

    Taken from every `len(x) // rows`-th row (O(rows·d), whatever the number of
    candidates) and divided by the components' mean standard deviation, so a projected
    patch is O(1) and the linear term's variance means the same for any k. Axes the data
    do not have (fewer rows than k, constant inputs) are zero columns.
    """
    sample = (np.asarray(x[:: max(1, len(x) // rows)], np.float64) - shift) / scale
    sample -= sample.mean(axis=0)
    _, sv, vt = np.linalg.svd(sample, full_matrices=False)
    rank = int(np.sum(sv > 1e-9 * sv[0])) if len(sv) and sv[0] > 0 else 0
    m = min(k, rank)
    out = np.zeros((x.shape[1], k))
    spread = float(sv[:m].mean()) / np.sqrt(len(sample)) if m else 0.0
    if spread > 0:
        out[:, :m] = vt[:m].T / spread
    return out


def saved_spec(state: dict[str, Any]) -> ModelSpec:
    """The ModelSpec a state was saved with; states from before `linear` had none (0)."""
    spec = state["spec"]
    return ModelSpec(**{"linear": 0, **spec, "hidden": tuple(spec["hidden"])})


def lower_triangular_sum_sq(lower: tf.Tensor, b: tf.Tensor, blocks: int = 8) -> tf.Tensor:
    """Column sums of squares of `lower @ b` for a lower-triangular `lower`.

    Row block i of the product needs only the first columns of `lower` up to the block's
    end, so the zero upper triangle is skipped: (blocks + 1) / (2·blocks) of a full
    matmul's multiply-adds. This product is most of the cost of the exact variance.
    """
    n = tf.shape(lower)[0]
    total = tf.zeros(tf.shape(b)[1:], b.dtype)
    for i in range(blocks):
        lo, hi = n * i // blocks, n * (i + 1) // blocks
        total += tf.reduce_sum(tf.square(tf.matmul(lower[lo:hi, :hi], b[:hi])), axis=0)
    return total


def _rank(loss: float) -> float:
    """A fit's objective for choosing among tries; a non-finite one loses."""
    return loss if np.isfinite(loss) else np.inf


class DKLModel:
    """Deep-kernel GP with compile-once training, warm starts and O(N) batched prediction.

    Args:
        spec: the plan's model settings (embedding size, hidden widths, kernel, steps, lr,
            precision `single` (float32) or `double` (float64)).
        input_dim: length of one feature vector (e.g. 256 for 16x16 patches).
        seed: seeds weight initialisation and re-initialisation; no global seed is set.
        warm_steps: Adam steps of a warm-started fit; default `max(10, spec.steps // 10)`.
            A cold fit (the first, or after re-initialisation) uses `spec.steps`.
        min_capacity: smallest padded training buffer; it doubles when full.
        predict_batch: candidates per compiled prediction call (last batch padded).
        jitter: added to the kernel diagonal; default 1e-5 (single) / 1e-8 (double).
        noise_floor: lower bound of the observation-noise variance (standardised units).
        activation: hidden-layer activation of the MLP.
        jit_compile: compile the training loop with XLA.
        max_reinit: re-initialisations allowed per fit on a collapsed embedding/lengthscale.
        priors: train to the MAP with N(0, weight_prior_scale²) priors on the MLP weights
            and LogNormal(0, 1) priors on amplitude, lengthscale and noise (the priors of
            gpax's viDKL): keeps a 20k-weight MLP from interpolating a few dozen points.
        weight_prior_scale: standard deviation of the weight prior.

    `spec.linear` = K > 0 adds the linear kernel term on K principal components (module
    docstring); its variance σ_l² is trained with the rest (no prior; it starts at log 2).
    The projection is fixed with the input normalisation and saved with the state.
    """

    def __init__(
        self,
        spec: ModelSpec,
        input_dim: int,
        seed: int,
        *,
        warm_steps: int | None = None,
        min_capacity: int = 32,
        predict_batch: int = 8192,
        jitter: float | None = None,
        noise_floor: float | None = None,
        activation: str = "tanh",
        jit_compile: bool = False,
        max_reinit: int = 1,
        priors: bool = True,
        weight_prior_scale: float = 1.0,
    ) -> None:
        validate_spec(spec)
        full_precision_matmuls()
        unused_gpu()
        if int(input_dim) < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if min_capacity < 1 or predict_batch < 1:
            raise ValueError("min_capacity and predict_batch must be >= 1")
        self.spec = spec
        self.input_dim = int(input_dim)
        self.seed = int(seed)
        self.warm_steps = max(10, spec.steps // 10) if warm_steps is None else int(warm_steps)
        self.min_capacity = int(min_capacity)
        self.predict_batch = int(predict_batch)
        self.dtype = tf.float64 if spec.precision == "double" else tf.float32
        self._np = np_dtype(spec.precision)
        single = spec.precision == "single"
        self.jitter = float(jitter if jitter is not None else (1e-5 if single else 1e-8))
        self.noise_floor = float(
            noise_floor if noise_floor is not None else (1e-4 if single else 1e-6))
        self.max_reinit = int(max_reinit)
        self.priors = bool(priors)
        self.weight_prior_scale = float(weight_prior_scale)
        if not self.weight_prior_scale > 0:
            raise ValueError("weight_prior_scale must be > 0")
        self.version = 0
        self.capacity = 0
        self.trace_counts = {"train": 0, "loss": 0, "predict": 0, "posterior": 0, "sample": 0}
        self._lock = threading.RLock()
        self._fits = 0
        self._reinits = 0
        self._x_shift: np.ndarray | None = None
        self._x_scale = 1.0
        self._y_mean, self._y_std = 0.0, 1.0
        self._x_train: np.ndarray | None = None
        self._y_train: np.ndarray | None = None
        self._post: tuple[tf.Tensor, ...] | None = None

        self.mlp = build_mlp(self.input_dim, spec.hidden, spec.embed, self.dtype, activation)
        self._shift = tf.Variable(tf.zeros([self.input_dim], self.dtype), name="x_shift")
        self._scale = tf.Variable(tf.ones([], self.dtype), name="x_scale")
        self.n_linear = min(int(spec.linear), self.input_dim)
        names = ("amplitude", "lengthscale", "noise") + (("linear",) if self.n_linear else ())
        self._raw = {name: tf.Variable(tf.zeros([], self.dtype), name=name) for name in names}
        self._projection = tf.Variable(tf.zeros([self.input_dim, self.n_linear], self.dtype),
                                       trainable=False, name="projection")
        self._vars = [*self.mlp.trainable_variables, *self._raw.values()]
        self._m = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._v = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._t = tf.Variable(0, dtype=tf.int64)
        self._initialise(0)

        d, e = self.input_dim, spec.embed
        x_spec = tf.TensorSpec([None, d], self.dtype)
        z_spec = tf.TensorSpec([None, e + self.n_linear], self.dtype)  # kernel inputs
        omega_spec = tf.TensorSpec([None, e], self.dtype)
        v_spec = tf.TensorSpec([None], self.dtype)
        # autograph=False: the bodies are plain graph code, and skipping autograph's
        # conversion of Keras/TFP internals makes the one-off trace several times cheaper
        compile_ = functools.partial(tf.function, autograph=False)
        self._train_fn = compile_(self._train_impl, jit_compile=jit_compile)
        self._loss_fn = compile_(self._loss_impl)
        self._posterior_fn = compile_(self._posterior_impl, input_signature=[x_spec, v_spec])
        self._predict_fn = compile_(
            self._predict_impl,
            input_signature=[x_spec, z_spec, tf.TensorSpec([None, None], self.dtype), v_spec])
        self._sample_fn = compile_(
            self._sample_impl,
            input_signature=[x_spec, z_spec, v_spec, omega_spec, v_spec, v_spec, v_spec])
        self._embed_fn = compile_(self._embedding, input_signature=[x_spec])
        self._health_fn = compile_(self._health_impl, input_signature=[x_spec])
        self._hyper_fn = compile_(self._hyper_impl)
        # called from inside the predict and sample graphs; XLA compiles it once per shape
        self._cross_kernel_fn = compile_(self._cross_kernel_impl, jit_compile=True,
                                         input_signature=[x_spec, z_spec])

    def _initialise(self, attempt: int) -> None:
        """(Re)draw MLP weights from the seed and reset kernel parameters and Adam."""
        rng = np.random.default_rng([self.seed, attempt])
        self.mlp.set_weights(glorot_weights(self.mlp, rng))
        self._raw["amplitude"].assign(softplus_inverse(1.0))
        self._raw["lengthscale"].assign(softplus_inverse(1.0))
        self._raw["noise"].assign(softplus_inverse(0.1))
        if self.n_linear:
            self._raw["linear"].assign(0.0)  # softplus(0) = log 2
        for slot in (*self._m, *self._v):
            slot.assign(tf.zeros_like(slot))
        self._t.assign(0)

    def _amplitude(self) -> tf.Tensor:
        return tf.math.softplus(self._raw["amplitude"])

    def _lengthscale(self) -> tf.Tensor:
        return tf.math.softplus(self._raw["lengthscale"]) + 1e-6

    def _noise(self) -> tf.Tensor:
        return tf.math.softplus(self._raw["noise"]) + self.noise_floor

    def _linear_slope2(self) -> tf.Tensor:
        """σ_l² / K: the linear term's weight per principal component."""
        return tf.math.softplus(self._raw["linear"]) / self.n_linear

    def _kernel(self) -> tfp.math.psd_kernels.PositiveSemidefiniteKernel:
        """The kernel on `_features`: the plan's kernel on the embedding (+ linear term)."""
        deep = make_kernel(self.spec.kernel, self._amplitude(), self._lengthscale())
        if not self.n_linear:
            return deep
        e = self.spec.embed
        linear = psd.Linear(slope_amplitude=tf.sqrt(self._linear_slope2()))
        return (psd.FeatureTransformed(deep, transformation_fn=lambda z, *_: z[..., :e])
                + psd.FeatureTransformed(linear, transformation_fn=lambda z, *_: z[..., e:]))

    def hyperparameters(self) -> dict[str, float]:
        """Kernel amplitude, lengthscale (embedding units), noise variance (standardised y),
        and the linear term's variance σ_l² when there is one."""
        amplitude, lengthscale, noise, *linear = self._hyper_fn().numpy().tolist()
        out = {"amplitude": amplitude, "lengthscale": lengthscale, "noise": noise,
               "jitter": self.jitter, "y_mean": self._y_mean, "y_std": self._y_std}
        if linear:
            out["linear"] = linear[0]
        return out

    def _hyper_impl(self) -> tf.Tensor:
        """The constrained kernel parameters in one tensor: one copy off the device."""
        parts = [self._amplitude(), self._lengthscale(), self._noise()]
        if self.n_linear:
            parts.append(tf.math.softplus(self._raw["linear"]))
        return tf.stack(parts)

    def _embedding(self, x: tf.Tensor) -> tf.Tensor:
        """The learned embedding of raw inputs: the stored input normalisation, then the MLP."""
        return self.mlp((x - self._shift) / self._scale, training=False)

    def _features(self, x: tf.Tensor) -> tf.Tensor:
        """What the kernel sees: the embedding, then the principal components if linear."""
        z = self._embedding(x)
        if not self.n_linear:
            return z
        return tf.concat([z, tf.matmul((x - self._shift) / self._scale, self._projection)], 1)

    def _nll(self, x: tf.Tensor, y: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
        """Exact negative log marginal likelihood per observed point; padded rows excluded.

        The padded rows and columns of K + (noise + jitter) I are replaced by the identity
        (and their targets by 0): they add 0 to the quadratic form and log-determinant and
        receive no gradient, which is exactly marginalising them out. This is what
        `GaussianProcess.log_prob(..., is_missing=...)` computes; it is written out because
        TFP 0.25 fails on that path in float64 (`tf.where` with a Python 0.).
        """
        keep = tf.logical_not(missing)
        z = self._features(x)
        k = self._kernel().matrix(z, z)
        k = tf.where(keep[:, None] & keep[None, :], k, tf.zeros_like(k))
        diag = tf.where(keep, tf.linalg.diag_part(k) + self._noise() + self.jitter,
                        tf.ones_like(y))
        yv = tf.where(keep, y, tf.zeros_like(y))
        n_obs = tf.reduce_sum(tf.cast(keep, self.dtype))
        nll = gaussian_nll(tf.linalg.set_diag(k, diag), yv)
        return (nll + 0.5 * n_obs * np.log(2.0 * np.pi)) / n_obs

    def gaussian_process(self, X: Any) -> tfp.distributions.GaussianProcess:
        """The model as a `tfp.distributions.GaussianProcess` over the embedding of X.

        Observations are in standardised units: `(y - y_mean) / y_std`
        (see `hyperparameters()`); `-log_prob(ys) / n` is the training loss.
        """
        x = tf.constant(self._check_x(X).astype(self._np))
        jitter = self.jitter
        return tfp.distributions.GaussianProcess(
            self._kernel(), index_points=self._features(x),
            observation_noise_variance=self._noise(),
            cholesky_fn=lambda k: tf.linalg.cholesky(
                tf.linalg.set_diag(k, tf.linalg.diag_part(k) + jitter)))

    def _objective(self, x: tf.Tensor, y: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
        """What Adam minimises: (NLL + negative log prior) per observed point."""
        nll = self._nll(x, y, missing)
        if not self.priors:
            return nll
        n_obs = tf.reduce_sum(tf.cast(tf.logical_not(missing), self.dtype))
        return nll + neg_log_prior(self.mlp.trainable_variables, self.weight_prior_scale, (
            self._amplitude(), self._lengthscale(), self._noise())) / n_obs

    def _loss_impl(self, x: tf.Tensor, y: tf.Tensor,
                   missing: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self.trace_counts["loss"] += 1
        return self._nll(x, y, missing), self._objective(x, y, missing)

    def _train_impl(self, x: tf.Tensor, y: tf.Tensor, missing: tf.Tensor,
                    n_steps: tf.Tensor) -> tf.Tensor:
        self.trace_counts["train"] += 1  # Python side effect: runs once per trace

        def step(i: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                loss = self._objective(x, y, missing)
            grads = tape.gradient(loss, self._vars)
            adam_update(self._vars, grads, self._m, self._v, self._t, self.spec.lr)
            return i + 1, loss

        start = (tf.constant(0, tf.int32), tf.constant(np.nan, self.dtype))
        return tf.while_loop(lambda i, _: i < n_steps, step, start)[1]

    def _posterior_impl(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Embedded training points, L^-1 and alpha = K^-1 y: what prediction reuses; and
        whether all of it is finite (a GPU Cholesky of an indefinite matrix gives NaN)."""
        self.trace_counts["posterior"] += 1
        z = self._features(x)
        n = tf.shape(z)[0]
        k = self._kernel().matrix(z, z)
        k += (self._noise() + self.jitter) * tf.eye(n, dtype=self.dtype)
        chol = tf.linalg.cholesky(k)
        linv = tf.linalg.triangular_solve(chol, tf.eye(n, dtype=self.dtype), lower=True)
        alpha = tf.linalg.cholesky_solve(chol, y[:, None])[:, 0]
        return z, linv, alpha, all_finite((z, linv, alpha))

    def _cross_kernel_impl(self, x: tf.Tensor, z_train: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """k(z_train, z), shape (len(z_train), len(x)), and the embedding z of x: one XLA
        program."""
        z, e = self._features(x), self.spec.embed
        k = cross_covariance(self.spec.kernel, self._amplitude(), self._lengthscale(),
                             z_train[:, :e], z[:, :e])
        if self.n_linear:
            k += self._linear_slope2() * tf.matmul(z_train[:, e:], z[:, e:], transpose_b=True)
        return k, z

    def _predict_impl(self, x: tf.Tensor, z_train: tf.Tensor, linv: tf.Tensor,
                      alpha: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        self.trace_counts["predict"] += 1
        ks, z = self._cross_kernel_fn(x, z_train)
        ks = ks[:tf.shape(linv)[0]]  # drop the padded rows
        mean = tf.linalg.matvec(ks, alpha, transpose_a=True)
        prior = tf.square(self._amplitude())
        if self.n_linear:
            prior += self._linear_slope2() * tf.reduce_sum(
                tf.square(z[:, self.spec.embed:]), axis=1)
        var = prior - lower_triangular_sum_sq(linv, ks)
        return mean, tf.maximum(var, 0.0)

    def _sample_impl(self, x: tf.Tensor, z_train: tf.Tensor, v: tf.Tensor, omega: tf.Tensor,
                     phase: tf.Tensor, w: tf.Tensor, w_linear: tf.Tensor) -> tf.Tensor:
        self.trace_counts["sample"] += 1
        ks, z = self._cross_kernel_fn(x, z_train)
        e = self.spec.embed
        prior = tf.linalg.matvec(tf.cos(tf.matmul(z[:, :e], omega, transpose_b=True) + phase), w)
        prior += tf.linalg.matvec(z[:, e:], w_linear)
        return prior + tf.linalg.matvec(ks[:tf.shape(v)[0]], v, transpose_a=True)

    def _check_x(self, X: Any) -> np.ndarray:
        x = np.asarray(X)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"X must have shape (n, {self.input_dim}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("X contains NaN or infinite values")
        return x

    def set_input_normalisation(self, X: Any) -> None:
        """Fix the input shift (per feature) and scale (one number) from e.g. all candidates.

        Without this call they are taken from the first fit's X and then kept, so warm
        starts see the same input space.
        """
        x = self._check_x(X)
        self._x_shift = x.mean(axis=0, dtype=np.float64)
        sq = sum(float(np.sum((x[i:i + 8192] - self._x_shift) ** 2))  # chunked: O(chunk)
                 for i in range(0, len(x), 8192))
        scale = float(np.sqrt(sq / x.size))
        self._x_scale = scale if scale > 0 else 1.0
        self._shift.assign(self._x_shift.astype(self._np))
        self._scale.assign(self._x_scale)
        if self.n_linear:
            self._projection.assign(principal_projection(
                x, self._x_shift, self._x_scale, self.n_linear).astype(self._np))

    def _padded(self, xn: np.ndarray, ys: np.ndarray, capacity: int) -> tuple[tf.Tensor, ...]:
        n = len(xn)
        xp = np.zeros((capacity, self.input_dim), self._np)
        yp = np.zeros(capacity, self._np)
        xp[:n], yp[:n] = xn, ys
        missing = np.arange(capacity) >= n
        return tf.constant(xp), tf.constant(yp), tf.constant(missing)

    def _grow(self, n: int) -> int:
        cap = max(self.capacity, self.min_capacity)
        while cap < n:
            cap *= 2
        self.capacity = cap
        return cap

    def negative_log_likelihood(self, X: Any, y: Any, capacity: int | None = None) -> float:
        """NLL per point of (X, y) at the current parameters, optionally padded to `capacity`.

        Uses the stored normalisations (fit first); padding must not change the value.
        """
        with self._lock:
            if self._x_shift is None:
                raise RuntimeError("fit the model (or set_input_normalisation) first")
            x = self._check_x(X).astype(self._np)
            ys = ((np.asarray(y, np.float64) - self._y_mean) / self._y_std).astype(self._np)
            cap = len(x) if capacity is None else int(capacity)
            if cap < len(x):
                raise ValueError("capacity is smaller than the number of points")
            return float(self._loss_fn(*self._padded(x, ys, cap))[0])

    def fit(self, X: Any, y: Any, max_steps: int | None = None,
            time_budget_s: float | None = None, restart: bool = False,
            tries: int = 1) -> FitReport:
        """Train on all data so far (warm start from the previous weights).

        Args:
            X: (n, input_dim) features, already normalised by the caller (patches).
            y: (n,) finite targets; standardised internally on these observations.
            max_steps: Adam steps; default `spec.steps` cold, `warm_steps` warm.
            time_budget_s: stop after about this long (checked between compiled chunks;
                the first call at a new capacity also pays the one-off trace).
            restart: draw fresh weights (from the seed) and fit cold instead of warm.
                Warm starts follow the order the points came in; a fresh fit on all of
                them maps better (docs/model.md, "The final map").
            tries: with `restart`, fit this many times from different fresh weights and
                keep the fit with the lowest objective: one cold fit on few points can land
                in a poor optimum, and the lowest of a few rarely does.

        Returns:
            FitReport with loss, steps, seconds and hyperparameters.
        """
        t0 = time.perf_counter()
        deadline = None if time_budget_s is None else t0 + float(time_budget_s)
        x = self._check_x(X)
        yv = np.asarray(y, np.float64).reshape(-1)
        if len(yv) != len(x) or len(x) == 0:
            raise ValueError(f"X has {len(x)} rows but y has {len(yv)} values (need >= 1)")
        if not np.all(np.isfinite(yv)):
            raise ValueError("y contains NaN or infinite values (drop failed measurements)")
        with self._lock:
            if self._x_shift is None:
                self.set_input_normalisation(x)
            self._y_mean = float(yv.mean())
            std = float(yv.std())
            self._y_std = std if std > 1e-12 * max(1.0, abs(self._y_mean)) else 1.0
            xn = x.astype(self._np)
            ys = ((yv - self._y_mean) / self._y_std).astype(self._np)
            cap = self._grow(len(x))
            data = self._padded(xn, ys, cap)
            cold = self._fits == 0 or restart
            steps = int(max_steps) if max_steps is not None else (
                self.spec.steps if cold else self.warm_steps)
            if steps < 0:
                raise ValueError("max_steps must be >= 0")
            if int(tries) < 1:
                raise ValueError(f"tries must be >= 1, got {tries}")
            n_tries = int(tries) if restart else 1
            done, best = 0, None
            for attempt in range(n_tries):
                if restart and (self._fits or attempt):
                    self._reinits += 1
                    self._initialise(self._reinits)
                loss, more, by_time, reasons, warnings = self._train_healthy(
                    data, xn, steps, max_steps, deadline)
                done += more
                if n_tries > 1 and (best is None or _rank(loss) < _rank(best[0])):
                    best = (loss, by_time, reasons, warnings, self._weights())
            if best is not None:
                loss, by_time, reasons, warnings, weights = best
                self._set_weights(weights)
            self._x_train, self._y_train = x.astype(np.float64), yv.copy()
            self._refresh_posterior()
            self._fits += 1
            self.version += 1
            return FitReport(
                loss=float(loss), steps=done, seconds=time.perf_counter() - t0,
                hyperparameters=self.hyperparameters(), n_train=len(x), capacity=cap,
                version=self.version, cold=cold or bool(reasons),
                stopped_by="time" if by_time else "steps",
                reinitialised=reasons, warnings=warnings, device=device_of(self._vars[0]))

    def _train_healthy(self, data: tuple[tf.Tensor, ...], xn: np.ndarray, steps: int,
                       max_steps: int | None, deadline: float | None
                       ) -> tuple[float, int, bool, list[str], list[str]]:
        """Train, then re-initialise and train cold while the result is unhealthy."""
        loss, done, by_time = self._run(data, steps, deadline)
        reasons: list[str] = []
        warnings: list[str] = []
        problem = self._health(xn, loss)
        while problem is not None:
            if len(reasons) >= self.max_reinit:
                warnings.append(problem)
                break
            reasons.append(problem)
            self._reinits += 1
            self._initialise(self._reinits)
            cold_steps = self.spec.steps if max_steps is None else int(max_steps)
            loss, more, by_time = self._run(data, cold_steps, deadline)
            done += more
            problem = self._health(xn, loss)
        return loss, done, by_time, reasons, warnings

    def _weights(self) -> list[np.ndarray]:
        """Weights and Adam state, to keep the best of several fits."""
        return [v.numpy() for v in (*self._vars, *self._m, *self._v, self._t)]

    def _set_weights(self, values: list[np.ndarray]) -> None:
        for var, value in zip((*self._vars, *self._m, *self._v, self._t), values, strict=True):
            var.assign(value)

    def _run(self, data: tuple[tf.Tensor, ...], steps: int,
             deadline: float | None) -> tuple[float, int, bool]:
        """Run `steps` Adam steps in compiled chunks sized to stop near the deadline."""
        done, loss, by_time = 0, float("nan"), False
        chunk = steps if deadline is None else min(steps, 1)
        while done < steps:
            if deadline is not None and time.perf_counter() >= deadline:
                by_time = True
                break
            start = time.perf_counter()
            loss = float(self._train_fn(*data, tf.constant(chunk, tf.int32)))
            done += chunk
            if deadline is not None:
                per_step = max((time.perf_counter() - start) / chunk, 1e-6)
                left = deadline - time.perf_counter()
                chunk = int(np.clip(0.5 * left / per_step, 1, steps - done or 1))
        if done == 0:  # nothing trained: report the loss at the current parameters
            loss = float(self._loss_fn(*data)[1])
        return loss, done, by_time

    def _health(self, xn: np.ndarray, loss: float) -> str | None:
        """Name what went wrong (non-finite, collapsed embedding or lengthscale), or None."""
        finite, spread, lengthscale = (t.numpy() for t in self._health_fn(tf.constant(xn)))
        if not finite or not np.isfinite(loss):
            return "non-finite loss or weights"
        if len(xn) < 2 or float(np.ptp(xn, axis=0).max()) == 0.0:
            return None  # identical inputs: nothing an embedding could separate
        spread = float(spread)
        if spread < 1e-4:
            return f"collapsed embedding (std {spread:.2e} over training points)"
        ratio = float(lengthscale) / spread
        if ratio < 1e-3 or ratio > 1e3:
            return f"lengthscale collapsed or exploded ({ratio:.2e} x embedding spread)"
        return None

    def _health_impl(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Whether every weight is finite, the embedding's spread over x, the lengthscale.

        One compiled call: on a GPU each separate check would be a launch and a copy back.
        """
        z = tf.cast(self._embedding(x), tf.float64)
        spread = tf.sqrt(tf.reduce_mean(tf.math.reduce_variance(z, axis=0)))
        return all_finite(self._vars), spread, tf.cast(self._lengthscale(), tf.float64)

    def _refresh_posterior(self) -> None:
        """Cache embedded training points, L^-1 and alpha for O(N) batched prediction."""
        assert self._x_train is not None and self._y_train is not None
        xn = tf.constant(self._x_train.astype(self._np))
        ys = tf.constant(((self._y_train - self._y_mean) / self._y_std).astype(self._np))
        z, linv, alpha, finite = self._posterior_fn(xn, ys)
        if not bool(finite):
            raise FloatingPointError("posterior Cholesky failed: kernel matrix not PSD")
        # zero-padded to the training capacity: the cross-kernel's XLA program sees a new
        # shape only when the training step retraces too (the padded rows are sliced off)
        pad = max(self.capacity - len(self._y_train), 0)
        self._post = tf.pad(z, [[0, pad], [0, 0]]), linv, alpha

    def _batches(self, x: np.ndarray, batch_size: int | None) -> Iterator[tuple[tf.Tensor, int]]:
        """Fixed-size batches (the last one padded), converted one at a time: O(batch)."""
        b = self.predict_batch if batch_size is None else int(batch_size)
        if b < 1:
            raise ValueError("batch_size must be >= 1")
        b = min(b, max(len(x), 1))
        for start in range(0, len(x), b):
            part = x[start:start + b].astype(self._np, copy=False)
            keep = len(part)
            if keep < b:  # pad the last batch: every call has the same shape
                part = np.concatenate([part, np.zeros((b - keep, x.shape[1]), self._np)])
            yield tf.convert_to_tensor(part), keep

    def predict(self, X: Any, batch_size: int | None = None,
                include_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of every row of X, in the units of y.

        `include_noise` adds the observation noise (predictive std of a new measurement).
        """
        with self._lock:
            if self._post is None:
                raise RuntimeError("predict() before fit(): no training data yet")
            x = self._check_x(X)
            z_train, linv, alpha = self._post
            means, variances = [], []
            for xb, keep in self._batches(x, batch_size):
                m, v = self._predict_fn(xb, z_train, linv, alpha)
                means.append(m.numpy()[:keep])
                variances.append(v.numpy()[:keep])
            mean = np.concatenate(means).astype(np.float64) if means else np.zeros(0)
            var = np.concatenate(variances).astype(np.float64) if variances else np.zeros(0)
            if include_noise:
                var = var + float(self._noise())
            return mean * self._y_std + self._y_mean, np.sqrt(var) * self._y_std

    def embed(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """The learned embedding of every row of X, shape (n, spec.embed)."""
        with self._lock:
            if self._x_shift is None:
                raise RuntimeError("embed() before fit(): no input normalisation yet")
            x = self._check_x(X)
            parts = [self._embed_fn(xb).numpy()[:keep] for xb, keep in self._batches(x, batch_size)]
            return np.concatenate(parts) if parts else np.zeros((0, self.spec.embed))

    def thompson_sample(self, X: Any, rng: np.random.Generator, n_features: int = 1024,
                        batch_size: int | None = None) -> np.ndarray:
        """One posterior function drawn at every row of X (units of y), without an NxN matrix.

        Pathwise conditioning on the embedding: a prior draw from random Fourier features
        of the kernel, f0(z) = phi(z)·w (plus u·w_l, w_l ~ N(0, σ_l²/K), on the principal
        components u when the kernel has the linear term), corrected by the exact update
        f(z) = f0(z) + k(z, Z)·(K + s²I)^-1 (y - f0(Z) - e), e ~ N(0, s²).
        Cost O(N·(features + n)).
        """
        with self._lock:
            if self._post is None:
                raise RuntimeError("thompson_sample() before fit()")
            x = self._check_x(X)
            z_train, linv, _ = self._post
            e = self.spec.embed
            ls, amp = float(self._lengthscale()), float(self._amplitude())
            omega, phase, w = draw_fourier_features(
                rng, self.spec.kernel, n_features, e, ls, amp)
            w_linear = np.zeros(self.n_linear)
            if self.n_linear:
                w_linear = rng.standard_normal(self.n_linear) * np.sqrt(
                    float(self._linear_slope2()))

            def prior(z: np.ndarray) -> np.ndarray:
                z = z.astype(np.float64)
                return np.cos(z[:, :e] @ omega.T + phase) @ w + z[:, e:] @ w_linear

            ys = (self._y_train - self._y_mean) / self._y_std
            ztr = z_train.numpy()[:len(ys)]  # the cached embedding is zero-padded
            eps = rng.standard_normal(len(ys)) * np.sqrt(float(self._noise()) + self.jitter)
            li = linv.numpy().astype(np.float64)
            v = li.T @ (li @ (ys - prior(ztr) - eps))
            args = [tf.constant(a.astype(self._np)) for a in (v, omega, phase, w, w_linear)]
            parts = [self._sample_fn(xb, z_train, *args).numpy()[:keep]
                     for xb, keep in self._batches(x, batch_size)]
            f = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
            return f * self._y_std + self._y_mean

    def get_state(self) -> dict[str, Any]:
        """Everything needed to resume: plain numpy arrays, str, int, float (msgpack-able)."""
        with self._lock:
            spec = asdict(self.spec)
            spec["hidden"] = list(self.spec.hidden)
            return {
                "format": STATE_FORMAT, "spec": spec, "input_dim": self.input_dim,
                "seed": self.seed, "version": self.version, "fits": self._fits,
                "reinits": self._reinits, "capacity": self.capacity,
                "warm_steps": self.warm_steps, "jitter": self.jitter,
                "noise_floor": self.noise_floor, "priors": self.priors,
                "weight_prior_scale": self.weight_prior_scale,
                "variables": [np.asarray(v.numpy()) for v in self._vars],
                "adam_m": [np.asarray(m.numpy()) for m in self._m],
                "adam_v": [np.asarray(v.numpy()) for v in self._v],
                "adam_t": int(self._t.numpy()),
                "x_shift": None if self._x_shift is None else self._x_shift.copy(),
                "x_scale": self._x_scale, "y_mean": self._y_mean, "y_std": self._y_std,
                "projection": np.asarray(self._projection.numpy(), np.float64)
                if self.n_linear else None,
                "x_train": None if self._x_train is None else self._x_train.copy(),
                "y_train": None if self._y_train is None else self._y_train.copy(),
            }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore `get_state()` output; arrays may come back as arrays, lists or bytes."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not a DKLModel state (format {got!r})")
        with self._lock:
            backup = self.get_state()
            try:
                self._restore(state)
            except (KeyError, TypeError, ValueError) as err:
                self._restore(backup)  # never leave a half-restored model behind
                raise ValueError(f"cannot restore DKLModel state: {err}") from err

    def _restore(self, state: dict[str, Any]) -> None:
        if int(state["input_dim"]) != self.input_dim:
            raise ValueError("state was saved for a different input_dim")
        saved = saved_spec(state)
        if (saved.embed, saved.hidden, saved.kernel, saved.precision, saved.linear) != (
                self.spec.embed, self.spec.hidden, self.spec.kernel, self.spec.precision,
                self.spec.linear):
            raise ValueError("state was saved for a different model architecture")
        for group, values in ((self._vars, state["variables"]), (self._m, state["adam_m"]),
                              (self._v, state["adam_v"])):
            if len(values) != len(group):
                raise ValueError("state has the wrong number of variables")
            for var, value in zip(group, values, strict=True):
                var.assign(as_array(value, tuple(var.shape), self._np))
        self._t.assign(int(state["adam_t"]))
        self.version, self._fits = int(state["version"]), int(state["fits"])
        self._reinits, self.capacity = int(state["reinits"]), int(state["capacity"])
        self.warm_steps, self._x_scale = int(state["warm_steps"]), float(state["x_scale"])
        self._y_mean, self._y_std = float(state["y_mean"]), float(state["y_std"])
        d, shift = self.input_dim, state["x_shift"]
        self._x_shift = None if shift is None else as_array(shift, (d,), np.float64)
        if self._x_shift is not None:
            self._shift.assign(self._x_shift.astype(self._np))
            self._scale.assign(self._x_scale)
        if self.n_linear:
            self._projection.assign(as_array(
                state["projection"], (d, self.n_linear), np.float64).astype(self._np))
        self._post = None
        if state["x_train"] is None:
            self._x_train = self._y_train = None
            return
        y_train = state["y_train"]
        n = len(y_train) // 8 if isinstance(y_train, bytes) else len(y_train)
        self._x_train = as_array(state["x_train"], (n, d), np.float64)
        self._y_train = as_array(state["y_train"], (n,), np.float64)
        self._refresh_posterior()

    @classmethod
    def from_state(cls, state: dict[str, Any], **options: Any) -> DKLModel:
        """A new model rebuilt from `get_state()` output (e.g. in another process)."""
        spec = saved_spec(state)
        saved = {"jitter": float(state["jitter"]), "noise_floor": float(state["noise_floor"]),
                 "priors": bool(state.get("priors", True)),
                 "weight_prior_scale": float(state.get("weight_prior_scale", 1.0))}
        model = cls(spec, int(state["input_dim"]), int(state["seed"]), **{**saved, **options})
        model.set_state(state)
        return model

