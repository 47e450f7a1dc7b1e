"""The deep-kernel GP: exactness against a plain GP, compile-once training, state, budgets."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import tensorflow as tf

from dkl.agent.models._tfcommon import cross_covariance, make_kernel
from dkl.agent.models.dkl_gp import DKLModel, lower_triangular_sum_sq
from dkl.agent.models.vector_dkl import VectorDKL
from dkl.dsl.plan import ModelSpec

D = 6


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D))
    y = np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] + 3.0 + 0.05 * rng.standard_normal(n)
    return x, y


def spec(**kw) -> ModelSpec:
    """The deep kernel alone (test_linear_kernel.py covers the linear term)."""
    base = {"embed": 2, "hidden": (8,), "steps": 30, "lr": 0.02, "linear": 0}
    base.update(kw)
    return ModelSpec(**base)


def kernel_np(a: np.ndarray, b: np.ndarray, amp: float, ls: float, name: str) -> np.ndarray:
    r = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0)) / ls
    if name == "rbf":
        return amp**2 * np.exp(-0.5 * r**2)
    return amp**2 * (1.0 + np.sqrt(5.0) * r + 5.0 / 3.0 * r**2) * np.exp(-np.sqrt(5.0) * r)


def exact_gp(z: np.ndarray, y: np.ndarray, zs: np.ndarray, hp: dict, name: str):
    """Textbook GP regression (Rasmussen & Williams alg. 2.1) in the model's y units."""
    ys = (y - hp["y_mean"]) / hp["y_std"]
    k = kernel_np(z, z, hp["amplitude"], hp["lengthscale"], name)
    k += (hp["noise"] + hp["jitter"]) * np.eye(len(z))
    ks = kernel_np(z, zs, hp["amplitude"], hp["lengthscale"], name)
    chol = np.linalg.cholesky(k)
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, ys))
    v = np.linalg.solve(chol, ks)
    var = hp["amplitude"] ** 2 - (v**2).sum(0)
    return ks.T @ alpha * hp["y_std"] + hp["y_mean"], np.sqrt(var) * hp["y_std"]


@pytest.mark.parametrize("n", [15, 130])  # 130: a cache padded from 130 to 256 rows
@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_identity_embedding_is_a_plain_exact_gp(kernel, n):
    x, y = data(n)
    xs, _ = data(7, seed=1)
    model = DKLModel(spec(hidden=(), embed=D, kernel=kernel, precision="double"), D, seed=0)
    model.mlp.set_weights([np.eye(D), np.zeros(D)])  # frozen identity feature extractor
    model.fit(x, y, max_steps=0)
    hp = model.hyperparameters()
    shift, scale = x.mean(0), np.std(x - x.mean(0))  # the documented input normalisation
    mean, std = model.predict(xs)
    ref_mean, ref_std = exact_gp((x - shift) / scale, y, (xs - shift) / scale, hp, kernel)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(std, ref_std, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_prediction_kernel_equals_the_tfp_kernel(kernel, dtype, rtol):
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((37, 3)).astype(dtype)
    z2 = np.concatenate([z1[:4], 3.0 * rng.standard_normal((9, 3))]).astype(dtype)  # r = 0 too
    amp, ls = tf.constant(1.3, dtype), tf.constant(0.7, dtype)
    ours = cross_covariance(kernel, amp, ls, tf.constant(z1), tf.constant(z2)).numpy()
    ref = make_kernel(kernel, amp, ls).matrix(z1, z2).numpy()
    assert ours.shape == (37, 13) and ours.dtype == dtype
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * 1e-3)
    with pytest.raises(ValueError, match="unknown kernel"):
        cross_covariance("periodic", amp, ls, tf.constant(z1), tf.constant(z2))


@pytest.mark.parametrize("n", [1, 3, 8, 9, 100, 257])
def test_triangular_sum_of_squares_equals_the_full_product(n):
    rng = np.random.default_rng(n)
    lower = np.tril(rng.standard_normal((n, n)))
    b = rng.standard_normal((n, 5))
    ours = lower_triangular_sum_sq(tf.constant(lower), tf.constant(b)).numpy()
    np.testing.assert_allclose(ours, ((lower @ b) ** 2).sum(0), rtol=1e-12)


@pytest.mark.parametrize("precision,tol", [("double", 1e-7), ("single", 2e-3)])
def test_trained_model_matches_exact_gp_on_its_embedding(precision, tol):
    x, y = data(20)
    xs, _ = data(9, seed=2)
    model = DKLModel(spec(precision=precision), D, seed=3)
    report = model.fit(x, y)
    assert report.steps == 30 and np.isfinite(report.loss)
    mean, std = model.predict(xs, batch_size=4)  # 3 batches, the last one padded
    ref_mean, ref_std = exact_gp(model.embed(x).astype(np.float64), y,
                                 model.embed(xs).astype(np.float64),
                                 model.hyperparameters(), model.spec.kernel)
    scale = np.std(y)
    np.testing.assert_allclose(mean, ref_mean, atol=tol * scale * 10)
    np.testing.assert_allclose(std, ref_std, atol=tol * scale * 10)
    assert mean.dtype == np.float64 and mean.shape == (9,) and np.all(std >= 0)
    empty_mean, empty_std = model.predict(np.zeros((0, D)))
    assert empty_mean.shape == empty_std.shape == (0,)
    dtype = tf.float64 if precision == "double" else tf.float32
    assert all(v.dtype == dtype for v in model.mlp.weights)


def test_padding_does_not_change_the_likelihood():
    x, y = data(11)
    model = DKLModel(spec(precision="double"), D, seed=0)
    model.fit(x, y, max_steps=5)
    exact = model.negative_log_likelihood(x, y)
    padded = model.negative_log_likelihood(x, y, capacity=64)
    assert np.isfinite(exact)
    assert padded == pytest.approx(exact, rel=1e-10)
    hp = model.hyperparameters()
    gp = model.gaussian_process(x)  # the same model as a tfp.distributions.GaussianProcess
    reference = -float(gp.log_prob((y - hp["y_mean"]) / hp["y_std"])) / len(y)
    assert exact == pytest.approx(reference, rel=1e-10)
    with pytest.raises(ValueError):
        model.negative_log_likelihood(x, y, capacity=5)


def test_training_retraces_only_when_capacity_doubles():
    x, y = data(40)
    xs, _ = data(50, seed=5)
    model = DKLModel(spec(), D, seed=0, min_capacity=8, warm_steps=2)
    expected = {5: (8, 1), 8: (8, 1), 9: (16, 2), 12: (16, 2), 16: (16, 2), 17: (32, 3)}
    for n, (cap, traces) in expected.items():
        report = model.fit(x[:n], y[:n])
        assert report.capacity == cap
        assert model.trace_counts["train"] == traces, n
        model.predict(xs[: n + 3], batch_size=16)
    assert model.trace_counts["predict"] == 1
    assert model.trace_counts["posterior"] == 1
    assert model.version == len(expected)


def test_cold_then_warm_step_counts():
    x, y = data(12)
    model = DKLModel(spec(steps=50), D, seed=0)
    assert model.fit(x[:10], y[:10]).steps == 50
    second = model.fit(x, y)
    assert second.steps == 10 and not second.cold  # max(10, 50 // 10)
    assert DKLModel(spec(steps=50), D, seed=0, warm_steps=3).warm_steps == 3
    assert model.fit(x, y, max_steps=4).steps == 4


def test_restart_fits_cold_from_fresh_weights_and_is_deterministic():
    x, y = data(16)
    xs, _ = data(10, seed=9)
    runs = []
    for _ in range(2):
        model = DKLModel(spec(steps=40), D, seed=3)
        model.fit(x[:12], y[:12])
        warm = model.fit(x, y)
        before = [w.copy() for w in model.mlp.get_weights()]
        report = model.fit(x, y, restart=True)
        assert report.cold and report.steps == 40 and not warm.cold
        # fresh weights, not the warm ones trained on: the first layer moved far
        assert not np.allclose(model.mlp.get_weights()[0], before[0], atol=1e-2)
        runs.append(model.predict(xs))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-6)
    first = DKLModel(spec(steps=40), D, seed=3).fit(x, y, restart=True)
    assert first.cold and first.steps == 40  # a first fit is cold anyway


def test_restart_tries_keep_the_fit_with_the_lowest_objective():
    x, y = data(16)
    xs, _ = data(10, seed=9)
    single = DKLModel(spec(steps=40), D, seed=0)
    single.fit(x[:12], y[:12])
    tried = []  # the same fresh weights, one restart at a time
    for _ in range(4):
        report = single.fit(x, y, restart=True)
        tried.append((report.loss, single.predict(xs)[0]))
    # a number of tries whose best is not the last one, so keeping it is what is tested
    n = next(k for k in range(2, 5) if np.argmin([t[0] for t in tried[:k]]) < k - 1)
    best = DKLModel(spec(steps=40), D, seed=0)
    best.fit(x[:12], y[:12])
    report = best.fit(x, y, restart=True, tries=n)
    loss, mean = min(tried[:n], key=lambda t: t[0])
    assert report.cold and report.steps == n * 40 and report.loss == pytest.approx(loss)
    np.testing.assert_allclose(best.predict(xs)[0], mean, rtol=1e-5, atol=1e-6)
    assert best.fit(x, y, tries=3).steps == best.warm_steps  # tries need a restart
    with pytest.raises(ValueError, match="tries"):
        best.fit(x, y, restart=True, tries=0)


@pytest.mark.parametrize("build", [
    lambda: DKLModel(spec(), D, seed=0),
    lambda: VectorDKL(spec(), D, seed=0, n_components=2),
], ids=["dkl", "vector"])
def test_models_turn_tf32_matmuls_off(build):
    """TF32 (TensorFlow's default on Ampere and newer GPUs) broke the posterior Cholesky at
    n = 500 on an H200; each model switches it off before it builds a graph."""
    tf.config.experimental.enable_tensor_float_32_execution(True)
    build()
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_fit_report_names_the_device_tensorflow_chose():
    """On a machine with a GPU the weights live there without any setting; else on the CPU."""
    x, y = data(12)
    report = DKLModel(spec(steps=2), D, seed=0).fit(x, y)
    expected = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    assert report.device == expected


def test_same_seed_same_predictions_other_seed_differs():
    """Bit for bit on a CPU. A GPU's reductions are not reproducible bit for bit: on an H200
    the same seed once differed by 3e-7 (relative), which float32 rounding allows."""
    tol = {"rtol": 1e-5, "atol": 1e-6} if tf.config.list_physical_devices("GPU") else {
        "rtol": 0, "atol": 1e-6}
    x, y = data(16)
    xs, _ = data(10, seed=9)
    a, b, c = (DKLModel(spec(), D, seed=s) for s in (7, 7, 8))
    preds = []
    for model in (a, b, c):
        model.fit(x[:12], y[:12])
        model.fit(x, y)
        preds.append(model.predict(xs))
    np.testing.assert_allclose(preds[0][0], preds[1][0], **tol)
    np.testing.assert_allclose(preds[0][1], preds[1][1], **tol)
    assert np.max(np.abs(preds[0][0] - preds[2][0])) > 1e-4


def _to_plain(obj, arrays_as: str):
    if isinstance(obj, dict):
        return {k: _to_plain(v, arrays_as) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v, arrays_as) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tobytes() if arrays_as == "bytes" else obj.tolist()
    return obj


@pytest.mark.parametrize("arrays_as", ["bytes", "list"])
def test_state_round_trip_through_msgpack(arrays_as):
    x, y = data(18)
    xs, _ = data(11, seed=4)
    model = DKLModel(spec(), D, seed=1)
    model.fit(x[:14], y[:14])
    wire = msgpack.packb(_to_plain(model.get_state(), arrays_as))
    restored = DKLModel.from_state(msgpack.unpackb(wire))
    for got, want in zip(restored.predict(xs), model.predict(xs), strict=True):
        np.testing.assert_array_equal(got, want)
    assert restored.version == model.version == 1
    # resumed training continues exactly as the original would (Adam moments restored)
    model.fit(x, y)
    restored.fit(x, y)
    np.testing.assert_allclose(restored.predict(xs)[0], model.predict(xs)[0], atol=1e-6)


def test_state_from_another_architecture_is_refused():
    x, y = data(8)
    model = DKLModel(spec(), D, seed=1)
    model.fit(x, y, max_steps=1)
    with pytest.raises(ValueError, match="architecture"):
        DKLModel(spec(hidden=(4,)), D, seed=1).set_state(model.get_state())
    with pytest.raises(ValueError, match="format"):
        model.set_state({"format": "something else"})
    before = model.predict(x)[0]
    broken = model.get_state()
    broken["y_mean"] = 100.0  # restored first ...
    del broken["x_train"]  # ... then this is missing
    with pytest.raises(ValueError, match="cannot restore"):
        model.set_state(broken)
    np.testing.assert_array_equal(model.predict(x)[0], before)  # rolled back, not half-set


def test_time_budget_stops_training():
    x, y = data(30)
    model = DKLModel(spec(), D, seed=0)
    model.fit(x, y, max_steps=2)  # pay the one-off trace first
    report = model.fit(x, y, max_steps=10**7, time_budget_s=0.3)
    assert report.stopped_by == "time"
    assert 0 < report.steps < 10**7
    assert report.seconds < 0.3 + 0.5  # one compiled chunk past the deadline at most
    spent = model.fit(x, y, time_budget_s=0.0)  # no time at all: keep the weights
    assert spent.steps == 0 and spent.stopped_by == "time"
    assert not spent.reinitialised and np.isfinite(spent.loss)


def test_collapsed_embedding_is_reinitialised():
    x, y = data(20)
    model = DKLModel(spec(lr=1e-9, steps=3), D, seed=0)
    last = model.mlp.layers[-1]
    last.kernel.assign(tf.zeros_like(last.kernel))  # every patch maps to one point
    report = model.fit(x, y)
    assert report.reinitialised and "collapsed embedding" in report.reinitialised[0]
    assert report.cold and report.steps == 6
    assert np.std(model.embed(x), axis=0).max() > 1e-3


def test_non_finite_weights_are_reinitialised():
    x, y = data(20)
    model = DKLModel(spec(steps=3), D, seed=0)
    model.fit(x, y)
    first = model.mlp.layers[0]
    first.kernel.assign(tf.fill(first.kernel.shape, float("nan")))
    report = model.fit(x, y)
    assert report.reinitialised == ["non-finite loss or weights"]
    assert np.isfinite(report.loss) and np.all(np.isfinite(model.predict(x)[0]))


def test_non_finite_posterior_is_refused():
    x, y = data(20)
    model = DKLModel(spec(steps=3), D, seed=0)
    model.fit(x, y)
    model._raw["noise"].assign(float("nan"))  # a CPU Cholesky returns NaN without raising
    with pytest.raises(FloatingPointError, match="not PSD"):
        model._refresh_posterior()
    model._raw["noise"].assign(-2.0)
    model._refresh_posterior()
    assert np.all(np.isfinite(model.predict(x)[0]))


def test_bad_input_gets_clear_errors():
    x, y = data(6)
    model = DKLModel(spec(), D, seed=0)
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict(x)
    bad = y.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(x, bad)
    with pytest.raises(ValueError, match="shape"):
        model.fit(x[:, :3], y)
    with pytest.raises(ValueError, match="rows"):
        model.fit(x, y[:4])
    with pytest.raises(ValueError, match="kernel"):
        DKLModel(spec(kernel="linear"), D, seed=0)
    with pytest.raises(ValueError, match="precision"):
        DKLModel(spec(precision="half"), D, seed=0)
    with pytest.raises(ValueError, match="seed"):
        DKLModel(spec(), D, seed=-1)


@pytest.mark.parametrize("linear", [0, 3])  # 3: with the linear term's prior draw
@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_thompson_draws_follow_the_posterior(kernel, linear):
    x, y = data(12)
    xs, _ = data(5, seed=6)
    model = DKLModel(spec(kernel=kernel, precision="double", linear=linear), D, seed=0)
    model.fit(x, y, max_steps=20)
    mean, std = model.predict(xs)
    rng = np.random.default_rng(0)
    draws = np.stack([model.thompson_sample(xs, rng, n_features=2000) for _ in range(300)])
    assert draws.shape == (300, 5)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * std.max() / np.sqrt(300) + 1e-3)
    np.testing.assert_allclose(draws.std(0), std, rtol=0.25, atol=1e-3)


def test_analytic_likelihood_gradient_matches_autodiff():
    from dkl.agent.models._tfcommon import gaussian_nll

    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 7))
    base = tf.constant(a @ a.T / 7 + np.eye(7))
    y = tf.constant(rng.standard_normal(7))
    scale = tf.Variable(1.3, dtype=tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        cov = base * scale
        ours = gaussian_nll(cov, y)
        chol = tf.linalg.cholesky(cov)
        white = tf.linalg.triangular_solve(chol, y[:, None])
        plain = 0.5 * tf.reduce_sum(white**2) + tf.reduce_sum(
            tf.math.log(tf.linalg.diag_part(chol)))
    assert float(ours) == pytest.approx(float(plain), rel=1e-12)
    assert float(tape.gradient(ours, scale)) == pytest.approx(
        float(tape.gradient(plain, scale)), rel=1e-9)


def test_public_names_resolve():
    import dkl.agent.models as models

    for name in models.__all__:
        assert getattr(models, name) is not None


def test_map_priors_shrink_the_weights_and_enter_the_objective():
    x, y = data(12)
    norms, reports = [], []
    for priors in (False, True):
        model = DKLModel(spec(), D, seed=2, priors=priors)
        reports.append(model.fit(x, y))
        norms.append(sum(float(np.sum(w**2)) for w in model.mlp.get_weights()))
        nll = model.negative_log_likelihood(x, y)
        # the reported loss is the objective: NLL alone without priors, larger with them
        if priors:
            assert reports[-1].loss > nll
    assert norms[1] < norms[0]
