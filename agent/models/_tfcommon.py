"""Pieces shared by the deep-kernel models: the MLP, the kernels, Adam, state arrays.

Kept here so that each model file holds one model and the two models build their feature
extractor, kernel and optimiser the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from dkl.dsl.plan import ModelSpec

psd = tfp.math.psd_kernels

#: Plan kernel name -> TFP kernel class (amplitude, length_scale).
KERNELS: dict[str, type] = {
    "rbf": psd.ExponentiatedQuadratic,
    "matern52": psd.MaternFiveHalves,
}
PRECISIONS = {"single": np.float32, "double": np.float64}


@dataclass
class FitReport:
    """What one `fit` did: published as the `run.model` document."""

    loss: float  #: training objective per point: NLL (standardised y) + neg. log prior / n
    steps: int  #: Adam steps taken in this call
    seconds: float  #: wall time of the call, compile included
    hyperparameters: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    capacity: int = 0  #: padded training-buffer size (doubles as data grows)
    version: int = 0  #: model version after this fit
    cold: bool = True  #: first fit or re-initialised: spec.steps by default
    stopped_by: str = "steps"  #: `steps` or `time`
    reinitialised: list[str] = field(default_factory=list)  #: reasons, if any
    warnings: list[str] = field(default_factory=list)
    device: str = ""  #: where the model's weights live, e.g. `CPU:0` or `GPU:0`

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the bus."""
        return asdict(self)


def validate_spec(spec: ModelSpec) -> None:
    """Raise ValueError naming the first bad field of a model spec."""
    if spec.kernel not in KERNELS:
        raise ValueError(f"unknown kernel {spec.kernel!r}; choose one of {sorted(KERNELS)}")
    if spec.precision not in PRECISIONS:
        raise ValueError(f"precision must be 'single' or 'double', got {spec.precision!r}")
    if int(spec.embed) < 1:
        raise ValueError(f"embedding dimension must be >= 1, got {spec.embed}")
    if any(int(h) < 1 for h in spec.hidden):
        raise ValueError(f"hidden layer widths must be >= 1, got {spec.hidden}")
    if int(spec.steps) < 0:
        raise ValueError(f"steps must be >= 0, got {spec.steps}")
    if not float(spec.lr) > 0.0:
        raise ValueError(f"learning rate must be > 0, got {spec.lr}")
    if int(spec.linear) < 0:
        raise ValueError(f"linear (principal components) must be >= 0, got {spec.linear}")


def full_precision_matmuls() -> None:
    """Turn TensorFlow's TF32 matmuls off, process-wide, before any graph is built.

    On Ampere and newer GPUs TensorFlow rounds float32 matmul inputs to TF32 (10 mantissa
    bits) by default. A kernel matrix takes its pairwise distances from a matmul, and at
    that precision it stops being positive definite: on an H200 the posterior Cholesky
    failed at n = 500. It changes nothing on a CPU.
    """
    tf.config.experimental.enable_tensor_float_32_execution(False)


def device_of(variable: tf.Variable) -> str:
    """The device a variable lives on, short: `CPU:0`, `GPU:0` (TensorFlow chose it)."""
    return variable.device.rsplit("device:", 1)[-1]


def np_dtype(precision: str) -> type:
    """numpy dtype of a plan precision (`single` float32, `double` float64)."""
    return PRECISIONS[precision]


def build_mlp(input_dim: int, hidden: Sequence[int], embed: int, dtype: tf.DType,
              activation: str = "tanh") -> tf_keras.Sequential:
    """Dense feature extractor input_dim -> hidden... -> embed (linear output layer)."""
    layers: list[Any] = [tf_keras.Input(shape=(input_dim,), dtype=dtype)]
    layers += [tf_keras.layers.Dense(int(h), activation=activation, dtype=dtype)
               for h in hidden]
    layers.append(tf_keras.layers.Dense(int(embed), dtype=dtype))
    return tf_keras.Sequential(layers)


def glorot_weights(mlp: tf_keras.Model, rng: np.random.Generator) -> list[np.ndarray]:
    """Glorot-uniform kernels and zero biases drawn from `rng` (no global TF seed)."""
    out = []
    for w in mlp.get_weights():
        if w.ndim == 2:
            limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
            out.append(rng.uniform(-limit, limit, w.shape).astype(w.dtype))
        else:
            out.append(np.zeros_like(w))
    return out


def make_kernel(name: str, amplitude: tf.Tensor, lengthscale: tf.Tensor) -> Any:
    """The plan's kernel on the embedding."""
    return KERNELS[name](amplitude=amplitude, length_scale=lengthscale)


def cross_covariance(name: str, amplitude: tf.Tensor, lengthscale: tf.Tensor,
                     z1: tf.Tensor, z2: tf.Tensor) -> tf.Tensor:
    """k(z1, z2) of the plan's kernel, shape (len(z1), len(z2)); equal to
    `make_kernel(...).matrix(z1, z2)` (tested), written for prediction only.

    Inside an XLA function it fuses into one pass over the output, about 3x faster than
    TFP's Matérn (which goes through log1p and exp); training keeps the TFP kernel.
    """
    d2 = tf.reduce_sum(tf.math.squared_difference(
        z1[:, None, :] / lengthscale, z2[None, :, :] / lengthscale), axis=-1)
    amp2 = tf.square(amplitude)
    if name == "rbf":
        return amp2 * tf.exp(-0.5 * d2)
    if name == "matern52":
        r = tf.sqrt(5.0 * d2)
        return amp2 * (1.0 + r + (5.0 / 3.0) * d2) * tf.exp(-r)
    raise ValueError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")


def softplus_inverse(value: float) -> float:
    """Raw parameter whose softplus is `value`."""
    return float(np.log(np.expm1(value)))


def adam_update(variables: Sequence[tf.Variable], grads: Sequence[tf.Tensor],
                m: Sequence[tf.Variable], v: Sequence[tf.Variable], t: tf.Variable,
                lr: float, beta1: float = 0.9, beta2: float = 0.999,
                eps: float = 1e-7) -> None:
    """One Adam step (Kingma & Ba) with moments in plain variables, so state is saveable.

    Each variable is updated by TensorFlow's fused Adam kernel: a warm fit is a few dozen
    small steps, so its time is mostly per-operation overhead (kernel launches on a GPU),
    and the fused update needs one operation per variable where the written-out formula
    needs about fifteen. Non-finite gradient entries are zeroed rather than poisoning the
    weights.
    """
    dtype = variables[0].dtype
    step = tf.cast(t.assign_add(1), dtype)
    b1, b2 = tf.constant(beta1, dtype), tf.constant(beta2, dtype)
    powers = {"beta1_power": tf.pow(b1, step), "beta2_power": tf.pow(b2, step)}
    for var, g, m_i, v_i in zip(variables, grads, m, v, strict=True):
        if g is None:
            continue
        g = tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m_i.handle, v=v_i.handle, **powers,
            lr=tf.constant(lr, dtype), beta1=b1, beta2=b2, epsilon=tf.constant(eps, dtype),
            grad=g)


def all_finite(tensors: Sequence[tf.Tensor | tf.Variable]) -> tf.Tensor:
    """One boolean: every entry of every tensor is finite (in a graph: one copy back)."""
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def as_array(value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A state entry back as an array: accepts ndarray, (nested) list, scalar or raw bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(bytes(value), dtype=dtype)
    else:
        arr = np.asarray(value, dtype=dtype)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"state array has {arr.size} values, expected shape {shape}")
    return arr.reshape(shape).copy()


@tf.custom_gradient
def gaussian_nll(cov: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, Any]:
    """0.5·yᵀK⁻¹y + 0.5·log|K| (summed over any batch dims) with the analytic gradient.

    dNLL/dK = 0.5·(K⁻¹ − ααᵀ), α = K⁻¹y, from one Cholesky factor: cheaper than
    back-propagating through the Cholesky decomposition op by op.
    """
    chol = tf.linalg.cholesky(cov)
    white = tf.linalg.triangular_solve(chol, y[..., None])  # L⁻¹y
    nll = 0.5 * tf.reduce_sum(tf.square(white)) + tf.reduce_sum(
        tf.math.log(tf.linalg.diag_part(chol)))

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        eye = tf.eye(tf.shape(cov)[-1], batch_shape=tf.shape(cov)[:-2], dtype=cov.dtype)
        linv = tf.linalg.triangular_solve(chol, eye)
        alpha = tf.matmul(linv, white, transpose_a=True)  # K⁻¹y, (..., n, 1)
        kinv = tf.matmul(linv, linv, transpose_a=True)
        d_cov = 0.5 * (kinv - tf.matmul(alpha, alpha, transpose_b=True))
        return upstream * d_cov, upstream * alpha[..., 0]

    return nll, grad


def draw_fourier_features(rng: np.random.Generator, kernel: str, n_features: int, dim: int,
                          lengthscale: float, amplitude: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random Fourier features of a stationary kernel: f(z) = Σ wᵢ cos(ωᵢ·z + bᵢ) is a
    draw from the GP prior (Rahimi & Recht). ω ~ the kernel's spectral density (normal for
    rbf, Student t with 5 dof for matern52) / lengthscale, b ~ U(0, 2π),
    w ~ N(0, 2a²/M). Returns (ω (M, dim), b (M,), w (M,))."""
    omega = rng.standard_normal((n_features, dim))
    if kernel == "matern52":
        omega *= np.sqrt(5.0 / rng.chisquare(5.0, size=(n_features, 1)))
    omega /= lengthscale
    phase = rng.uniform(0.0, 2.0 * np.pi, n_features)
    w = rng.standard_normal(n_features) * amplitude * np.sqrt(2.0 / n_features)
    return omega, phase, w


def neg_log_prior(weights: Sequence[tf.Variable], weight_scale: float,
                  positives: Sequence[tf.Tensor]) -> tf.Tensor:
    """MAP priors as in gpax's viDKL, constants dropped: N(0, weight_scale²) on every
    weight, LogNormal(0, 1) on each positive kernel parameter (amplitude, lengthscale,
    noise variance)."""
    out = 0.5 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights]) / weight_scale**2
    for value in positives:
        log_v = tf.math.log(value)
        out += log_v + 0.5 * tf.square(log_v)
    return out
