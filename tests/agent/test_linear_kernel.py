"""`model dkl linear=K`: the deep kernel plus a linear kernel on K principal components."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from dkl.agent.decide import Decider
from dkl.agent.models.dkl_gp import DKLModel, principal_projection
from dkl.dsl import compile_source
from dkl.dsl.plan import ModelSpec

from .test_dkl_gp import kernel_np

D = 6


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)) * np.array([3.0, 2.0, 1.0, 1.0, 0.5, 0.5])
    y = np.sin(x[:, 1]) + 0.5 * x[:, 0] + 0.05 * rng.standard_normal(n)
    return x, y


def spec(**kw) -> ModelSpec:
    base = {"embed": 2, "hidden": (8,), "steps": 30, "lr": 0.02, "linear": 3}
    base.update(kw)
    return ModelSpec(**base)


def summed_kernel(za, ua, zb, ub, hp: dict, k: int, name: str) -> np.ndarray:
    """k_deep(z, z') + (σ_l² / K)·u·u', written out by hand."""
    return kernel_np(za, zb, hp["amplitude"], hp["lengthscale"], name) + (
        hp["linear"] / k) * ua @ ub.T


def exact_gp(z, u, y, zs, us, hp: dict, k: int, name: str):
    """Textbook GP regression (Rasmussen & Williams alg. 2.1) with the summed kernel."""
    ys = (y - hp["y_mean"]) / hp["y_std"]
    kxx = summed_kernel(z, u, z, u, hp, k, name) + (hp["noise"] + hp["jitter"]) * np.eye(len(z))
    ks = summed_kernel(z, u, zs, us, hp, k, name)
    chol = np.linalg.cholesky(kxx)
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, ys))
    v = np.linalg.solve(chol, ks)
    prior = np.diag(summed_kernel(zs, us, zs, us, hp, k, name))
    return ks.T @ alpha * hp["y_std"] + hp["y_mean"], np.sqrt(prior - (v**2).sum(0)) * hp["y_std"]


def components(model: DKLModel, x: np.ndarray) -> np.ndarray:
    """The principal components the linear term sees, from the saved state alone."""
    state = model.get_state()
    return (x - state["x_shift"]) / state["x_scale"] @ state["projection"]


@pytest.mark.parametrize("n", [15, 130])  # 130: a cache padded from 130 to 256 rows
@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_trained_model_is_the_exact_gp_of_the_summed_kernel(kernel, n):
    x, y = data(n)
    xs, _ = data(9, seed=1)
    model = DKLModel(spec(kernel=kernel, precision="double"), D, seed=0)
    model.set_input_normalisation(np.concatenate([x, xs]))
    report = model.fit(x, y)
    hp = report.hyperparameters
    assert hp["linear"] > 0 and report.steps == 30
    mean, std = model.predict(xs, batch_size=4)  # 3 batches, the last one padded
    ref_mean, ref_std = exact_gp(model.embed(x), components(model, x), y, model.embed(xs),
                                 components(model, xs), hp, 3, kernel)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(std, ref_std, rtol=1e-6, atol=1e-7)
    # the same model as a tfp.distributions.GaussianProcess: its log_prob is the loss
    ys = (y - hp["y_mean"]) / hp["y_std"]
    reference = -float(model.gaussian_process(x).log_prob(ys)) / n
    assert model.negative_log_likelihood(x, y) == pytest.approx(reference, rel=1e-10)


def test_projection_holds_the_leading_principal_axes():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    x = (rng.standard_normal((2000, 5)) * [4.0, 2.0, 0.1, 0.1, 0.1]) @ axes.T + 7.0
    shift = x.mean(0)
    p = principal_projection(x, shift, 2.0, 2)
    u = (x - shift) / 2.0 @ p
    assert p.shape == (5, 2)
    for col, axis in zip(p.T, axes.T[:2], strict=True):  # the two leading axes, in order
        assert abs(col @ axis) / np.linalg.norm(col) == pytest.approx(1.0, abs=1e-3)
    assert np.mean(u.std(0)) == pytest.approx(1.0, rel=1e-6)  # O(1) projections
    assert abs(np.corrcoef(u.T)[0, 1]) < 1e-6  # uncorrelated components
    few = principal_projection(x[:3], x[:3].mean(0), 1.0, 4)  # 3 rows: 2 axes at most
    assert few.shape == (5, 4) and np.all(few[:, 2:] == 0) and np.all(few[:, :2] != 0)
    flat = principal_projection(np.ones((10, 5)), np.ones(5), 1.0, 3)
    assert np.all(flat == 0)


def test_more_components_than_inputs_are_clipped():
    x, y = data(10)
    model = DKLModel(spec(linear=50), D, seed=0)
    model.fit(x, y, max_steps=2)
    assert model.n_linear == D and model.get_state()["projection"].shape == (D, D)


def test_linear_term_learns_a_brightness_map_the_mlp_alone_misses():
    """A map linear in the patch (the survey's brightness) from 15 points."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 16)) @ rng.standard_normal((16, 16))
    y = x @ np.linalg.svd(x - x.mean(0), full_matrices=False)[2][0]  # the leading axis
    r = {}
    for k in (0, 4):
        model = DKLModel(ModelSpec(linear=k), 16, seed=0)
        model.set_input_normalisation(x)
        model.fit(x[:15], y[:15])
        r[k] = np.corrcoef(model.predict(x)[0], y)[0, 1]
    assert r[4] > 0.999 and 1 - r[4] < (1 - r[0]) / 10, r  # 10x less unexplained


def test_state_round_trip_and_architecture_check():
    x, y = data(18)
    xs, _ = data(11, seed=4)
    model = DKLModel(spec(), D, seed=1)
    model.fit(x[:14], y[:14])

    def plain(obj):  # numpy arrays as raw bytes, as the journal writes them
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [plain(v) for v in obj]
        return obj.tobytes() if isinstance(obj, np.ndarray) else obj

    restored = DKLModel.from_state(msgpack.unpackb(msgpack.packb(plain(model.get_state()))))
    for got, want in zip(restored.predict(xs), model.predict(xs), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="architecture"):
        DKLModel(spec(linear=0), D, seed=1).set_state(model.get_state())
    old = DKLModel(spec(linear=0), D, seed=1)  # a state saved before `linear` existed
    old.fit(x[:14], y[:14])
    state = old.get_state()
    del state["spec"]["linear"], state["projection"]
    np.testing.assert_array_equal(DKLModel.from_state(state).predict(xs)[0], old.predict(xs)[0])
    broken = model.get_state()
    del broken["projection"]
    with pytest.raises(ValueError, match="cannot restore"):
        DKLModel(spec(), D, seed=1).set_state(broken)


def test_plan_option_reaches_the_decider():
    result = compile_source("scalarize peak(1)\nmodel dkl linear=4\nstop after 20\n")
    assert result.plan is not None and result.plan.model.linear == 4
    x, y = data(40)
    decider = Decider(result.plan, x, seed=0)
    decision = decider.decide(np.arange(12), y[:12])
    assert decider.model.n_linear == 4 and np.all(np.isfinite(decision.scores[12:]))
    default = compile_source("scalarize peak(1)\nstop after 20\n").plan
    off = compile_source("scalarize peak(1)\nmodel dkl linear=0\nstop after 20\n").plan
    assert default is not None and off is not None
    assert default.model.linear == 32 and Decider(off, x, seed=0).model.n_linear == 0
    with pytest.raises(ValueError, match="linear"):
        DKLModel(ModelSpec(linear=-1), D, seed=0)
