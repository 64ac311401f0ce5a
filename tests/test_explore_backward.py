"""Lesson 04's staged backward pass and explorer, against numerical gradients and bnlib."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from bnlib import explore_backward
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.gradcheck import numerical_gradient, rel_error


def _batch(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(0.0, 3.0, d)
    return x, rng.uniform(0.5, 2.0, d), rng.normal(size=d), rng.normal(size=(n, d))


@pytest.mark.parametrize("n,d,eps", [(2, 1, 1e-3), (5, 3, 1e-3), (16, 4, 1e-5), (7, 2, 0.5)])
def test_staged_backward_matches_numerical_gradients(n, d, eps):
    x, gamma, beta, dout = _batch(n, d, seed=n)

    def out(x_=x, gamma_=gamma, beta_=beta):
        return batchnorm_forward(x_, gamma_, beta_, np.zeros(d), np.ones(d), training=True,
                                 eps=eps)[0]

    dx, dgamma, dbeta = explore_backward.batchnorm_backward_staged(dout, x, gamma, eps)
    assert rel_error(dx, numerical_gradient(lambda v: out(x_=v), x.copy(), dout)) < 1e-6
    assert rel_error(dgamma, numerical_gradient(lambda v: out(gamma_=v), gamma.copy(),
                                                dout)) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda v: out(beta_=v), beta.copy(), dout)) < 1e-7


@pytest.mark.parametrize("n,d", [(3, 2), (32, 8)])
def test_staged_backward_equals_bnlib_compact(n, d):
    x, gamma, beta, dout = _batch(n, d, seed=100 + n)
    _, cache, _, _ = batchnorm_forward(x, gamma, beta, np.zeros(d), np.ones(d), training=True)
    for staged, compact in zip(explore_backward.batchnorm_backward_staged(dout, x, gamma),
                               batchnorm_backward(dout, cache)):
        np.testing.assert_allclose(staged, compact, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pattern", explore_backward.PATTERNS)
@pytest.mark.parametrize("batch_size", [2, 8, 33])
def test_backward_example_gradients_sum_to_zero_and_match_dbeta(pattern, batch_size):
    ex = explore_backward.backward_example(pattern, batch_size)
    assert ex.dout.shape == ex.dx.shape == (batch_size, 1)
    assert abs(ex.dx.sum()) < 1e-10
    assert ex.dbeta == pytest.approx(ex.dout.sum())
    assert ex.dgamma == pytest.approx(float((ex.dout * ex.x_hat).sum()))


def test_constant_upstream_gradient_gives_zero_dx():
    ex = explore_backward.backward_example("all ones", 8)
    assert np.abs(ex.dx).max() < 1e-12
    assert ex.dbeta == pytest.approx(8.0)


def test_upstream_equal_to_x_hat_leaves_only_the_eps_term():
    """sum(dx * x_hat) = gamma * inv_std * dgamma * eps / (var + eps) (closed form)."""
    ex = explore_backward.backward_example("equal to x_hat", 8)
    var, eps, gamma = ex.x.var(), 1e-3, 1.5
    predicted = gamma / np.sqrt(var + eps) * ex.dgamma * eps / (var + eps)
    assert float((ex.dx * ex.x_hat).sum()) == pytest.approx(predicted, rel=1e-9)


def test_upstream_gradient_rejects_unknown_patterns():
    with pytest.raises(ValueError, match="pattern must be one of"):
        explore_backward.upstream_gradient("zigzag", 4)


def test_backward_view_readout():
    fig, text = explore_backward.backward_view("all ones", 8)
    assert "dbeta = 8.000" in text
    assert "largest |dx| = 0 (to round-off)" in text
    assert "-0.000" not in text
    dout_lines, dx_lines = fig.axes[0].collections[:2]
    assert [seg[1][1] for seg in dout_lines.get_segments()] == [1.0] * 8
    assert max(abs(seg[1][1]) for seg in dx_lines.get_segments()) < 1e-12


def test_backward_explorer_updates_on_control_moves():
    explorer = explore_backward.backward_explorer()
    before, text_before = explorer.updates, explorer.readout.value
    explorer.controls["pattern"].value = "one-hot"
    assert explorer.updates == before + 1
    assert explorer.readout.value != text_before
    assert "dbeta = 1.000" in explorer.readout.value
    explorer.controls["batch_size"].value = 20
    assert explorer.updates == before + 2
    ex = explore_backward.backward_example("one-hot", 20)
    assert f"dgamma = {ex.dgamma:.3f}" in explorer.readout.value
    dx_heights = [seg[1][1] for seg in explorer.figure.axes[0].collections[1].get_segments()]
    np.testing.assert_allclose(dx_heights, ex.dx.ravel())


def test_importing_bnlib_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, bnlib, bnlib.explore_backward, bnlib.explore_forward; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_staged_backward_matches_keras_autodiff():
    """The staged pass against TensorFlow's automatic gradients of the Keras layer (float32)."""
    from bnlib import tf_compare

    x, gamma, beta, dout = _batch(12, 3, seed=7)
    keras_grads = tf_compare.keras_batchnorm_gradients(x, gamma, beta, dout, eps=1e-3)
    for ours, theirs in zip(explore_backward.batchnorm_backward_staged(dout, x, gamma, 1e-3),
                            keras_grads):
        np.testing.assert_allclose(theirs, ours, atol=1e-5)
