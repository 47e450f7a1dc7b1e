"""Full-data "vector" deep-kernel GP: reconstruct a whole spectrum from its patch.

For offline analysis of pre-acquired data (every pixel measured, or a dense subset): the
spectra are compressed to their first few principal components, and one shared MLP
embedding feeds independent GPs, one per component (a batch of TFP kernels with their own
amplitude, lengthscale and noise). The predicted spectrum is the PCA mean plus the sum of
predicted component scores times the components; its variance is the sum of component
variances times the squared components (the components are modelled as independent).

Example:
    >>> model = VectorDKL(ModelSpec(steps=300), input_dim=256, seed=0, n_components=4)
    >>> model.fit(patches, spectra)               # (n, 256), (n, E)
    >>> mean, std = model.predict(all_patches)    # (N, E) each
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import tensorflow as tf

from dkl.agent.models._cuda import unused_gpu
from dkl.agent.models._tfcommon import (
    FitReport,
    adam_update,
    build_mlp,
    device_of,
    full_precision_matmuls,
    gaussian_nll,
    glorot_weights,
    make_kernel,
    np_dtype,
    softplus_inverse,
    validate_spec,
)
from dkl.dsl.plan import ModelSpec

__all__ = ["VectorDKL"]


class VectorDKL:
    """Shared-embedding deep-kernel GP over the leading PCA scores of vector targets.

    Args:
        spec: the plan's model settings (embedding, hidden widths, kernel, steps, lr,
            precision). `spec.linear` is not used: this model has no linear kernel term.
        input_dim: length of one feature vector (patch).
        seed: seeds the weights; no global seed is set.
        n_components: principal components modelled (at most min(n, E) at fit time).
        jitter: added to each kernel diagonal.
        noise_floor: lower bound of each component's noise variance (standardised units).
    """

    def __init__(self, spec: ModelSpec, input_dim: int, seed: int, n_components: int = 4,
                 *, jitter: float | None = None, noise_floor: float = 1e-4,
                 activation: str = "tanh", predict_batch: int = 4096) -> None:
        validate_spec(spec)
        full_precision_matmuls()
        unused_gpu()
        if int(n_components) < 1 or int(input_dim) < 1 or int(seed) < 0:
            raise ValueError("n_components and input_dim must be >= 1, seed >= 0")
        self.spec, self.input_dim, self.seed = spec, int(input_dim), int(seed)
        self.k = int(n_components)
        self.dtype = tf.float64 if spec.precision == "double" else tf.float32
        self._np = np_dtype(spec.precision)
        self.jitter = jitter if jitter is not None else (
            1e-5 if spec.precision == "single" else 1e-8)
        self.noise_floor = float(noise_floor)
        self.predict_batch = int(predict_batch)
        self.mlp = build_mlp(self.input_dim, spec.hidden, spec.embed, self.dtype, activation)
        self.mlp.set_weights(glorot_weights(self.mlp, np.random.default_rng([self.seed, 0])))
        init = {"amplitude": 1.0, "lengthscale": 1.0, "noise": 0.1}
        self._raw = {name: tf.Variable(np.full(self.k, softplus_inverse(v), self._np), name=name)
                     for name, v in init.items()}
        self._vars = [*self.mlp.trainable_variables, *self._raw.values()]
        self._m = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._v = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._t = tf.Variable(0, dtype=tf.int64)
        self.version = 0
        self.explained_variance_ratio: np.ndarray | None = None
        self._pca: dict[str, np.ndarray] | None = None
        self._post: tuple[tf.Tensor, ...] | None = None
        x_spec = tf.TensorSpec([None, self.input_dim], self.dtype)
        s_spec = tf.TensorSpec([None, None], self.dtype)  # (k, n) standardised scores
        compile_ = functools.partial(tf.function, autograph=False)  # plain graph code
        self._train_fn = compile_(self._train_impl, input_signature=[
            x_spec, s_spec, tf.TensorSpec([], tf.int32)])
        self._posterior_fn = compile_(self._posterior_impl, input_signature=[x_spec, s_spec])
        self._predict_fn = compile_(self._predict_impl, input_signature=[
            x_spec, tf.TensorSpec([None, self.spec.embed], self.dtype),
            tf.TensorSpec([None, None, None], self.dtype), s_spec])

    def _kernel(self) -> Any:
        ls = tf.math.softplus(self._raw["lengthscale"]) + 1e-6
        return make_kernel(self.spec.kernel, tf.math.softplus(self._raw["amplitude"]), ls)

    def _noise(self) -> tf.Tensor:
        return tf.math.softplus(self._raw["noise"]) + self.noise_floor

    def _covariance(self, z: tf.Tensor) -> tf.Tensor:
        """(k, n, n) kernel matrices plus each component's noise and the jitter."""
        k = self._kernel().matrix(z, z)
        eye = tf.eye(tf.shape(z)[0], dtype=self.dtype)
        return k + (self._noise()[:, None, None] + self.jitter) * eye

    def _train_impl(self, x: tf.Tensor, scores: tf.Tensor, n_steps: tf.Tensor) -> tf.Tensor:
        n = tf.cast(tf.shape(x)[0], self.dtype)

        def step(i: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                nll = gaussian_nll(self._covariance(self.mlp(x, training=False)), scores)
                loss = nll / n + 0.5 * self.k * np.log(2.0 * np.pi)
            adam_update(self._vars, tape.gradient(loss, self._vars), self._m, self._v,
                        self._t, self.spec.lr)
            return i + 1, loss

        start = (tf.constant(0, tf.int32), tf.constant(np.nan, self.dtype))
        return tf.while_loop(lambda i, _: i < n_steps, step, start)[1]

    def _posterior_impl(self, x: tf.Tensor, scores: tf.Tensor) -> tuple[tf.Tensor, ...]:
        z = self.mlp(x, training=False)
        chol = tf.linalg.cholesky(self._covariance(z))
        eye = tf.broadcast_to(tf.eye(tf.shape(z)[0], dtype=self.dtype), tf.shape(chol))
        linv = tf.linalg.triangular_solve(chol, eye)
        alpha = tf.linalg.cholesky_solve(chol, scores[:, :, None])[:, :, 0]
        return z, linv, alpha

    def _predict_impl(self, x: tf.Tensor, z_train: tf.Tensor, linv: tf.Tensor,
                      alpha: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ks = self._kernel().matrix(z_train, self.mlp(x, training=False))  # (k, n, B)
        mean = tf.einsum("knb,kn->kb", ks, alpha)
        v = tf.matmul(linv, ks)
        amp2 = tf.square(tf.math.softplus(self._raw["amplitude"]))[:, None]
        return mean, tf.maximum(amp2 - tf.reduce_sum(tf.square(v), axis=1), 0.0)

    def _normalise(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"X must have shape (n, {self.input_dim}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("X contains NaN or infinite values")
        if self._pca is None:
            raise RuntimeError("fit the model first")
        return ((x - self._pca["x_shift"]) / self._pca["x_scale"]).astype(self._np)

    def fit(self, X: Any, Y: Any, max_steps: int | None = None,
            time_budget_s: float | None = None) -> FitReport:
        """Fit PCA on Y (n, E) and the shared-embedding GPs on the component scores.

        Refitting warm-starts from the current weights with `spec.steps` steps (or
        `max_steps`), in chunks of 25 steps between time-budget checks.
        """
        t0 = time.perf_counter()
        x = np.asarray(X, dtype=np.float64)
        y = np.asarray(Y, dtype=np.float64)
        if y.ndim != 2 or x.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise ValueError(f"need X (n, d) and Y (n, E) with n >= 2, got {x.shape}, {y.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("X or Y contains NaN or infinite values")
        if self.k > min(len(y), y.shape[1]):
            raise ValueError(f"{self.k} components need n and E >= {self.k}, got {y.shape}")
        x_shift = x.mean(axis=0)
        x_scale = float(np.std(x - x_shift)) or 1.0
        y_mean = y.mean(axis=0)
        _, sing, vt = np.linalg.svd(y - y_mean, full_matrices=False)
        comps = vt[: self.k]
        scores = (y - y_mean) @ comps.T  # (n, k)
        s_std = np.where(scores.std(axis=0) > 0, scores.std(axis=0), 1.0)
        total = float(np.sum(sing**2)) or 1.0
        self.explained_variance_ratio = sing[: self.k] ** 2 / total
        self._pca = {"x_shift": x_shift, "x_scale": np.float64(x_scale), "y_mean": y_mean,
                     "components": comps, "score_std": s_std}
        xt = tf.constant(self._normalise(x))
        st = tf.constant((scores / s_std).T.astype(self._np))
        steps = self.spec.steps if max_steps is None else int(max_steps)
        done, loss, by_time = 0, float("nan"), False
        while done < steps:
            if time_budget_s is not None and time.perf_counter() - t0 >= time_budget_s:
                by_time = True
                break
            chunk = min(25, steps - done)
            loss = float(self._train_fn(xt, st, tf.constant(chunk, tf.int32)))
            done += chunk
        self._post = self._posterior_fn(xt, st)
        self.version += 1
        return FitReport(loss=loss, steps=done, seconds=time.perf_counter() - t0,
                         hyperparameters=self.hyperparameters(), n_train=len(x),
                         capacity=len(x), version=self.version, cold=self.version == 1,
                         stopped_by="time" if by_time else "steps",
                         device=device_of(self._vars[0]))

    def hyperparameters(self) -> dict[str, Any]:
        """Per-component amplitude, lengthscale and noise (standardised score units)."""
        return {"amplitude": tf.math.softplus(self._raw["amplitude"]).numpy().tolist(),
                "lengthscale": (tf.math.softplus(self._raw["lengthscale"]) + 1e-6).numpy().tolist(),
                "noise": self._noise().numpy().tolist()}

    def predict_components(self, X: Any, batch_size: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of each component score, shape (N, k), in PCA units."""
        if self._post is None or self._pca is None:
            raise RuntimeError("predict() before fit()")
        xn = self._normalise(X)
        b = self.predict_batch if batch_size is None else int(batch_size)
        means, variances = [], []
        for start in range(0, len(xn), b):
            part = xn[start:start + b]
            keep = len(part)
            if 0 < keep < b and start > 0:  # pad the last batch to the common shape
                part = np.concatenate([part, np.zeros((b - keep, xn.shape[1]), xn.dtype)])
            m, v = self._predict_fn(tf.constant(part), *self._post)
            means.append(m.numpy()[:, :keep])
            variances.append(v.numpy()[:, :keep])
        s = self._pca["score_std"]
        mean = np.concatenate(means, axis=1).T.astype(np.float64) * s
        std = np.sqrt(np.concatenate(variances, axis=1).T.astype(np.float64)) * s
        return mean, std

    def predict(self, X: Any, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reconstructed spectra (N, E) and their pointwise std (N, E)."""
        mean_c, std_c = self.predict_components(X, batch_size)
        assert self._pca is not None
        comps = self._pca["components"]
        mean = self._pca["y_mean"] + mean_c @ comps
        std = np.sqrt((std_c**2) @ (comps**2))
        return mean, std
