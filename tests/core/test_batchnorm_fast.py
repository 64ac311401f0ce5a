"""bnlib.batchnorm_fast against the reference bnlib.batchnorm and against plain NumPy.

The reference is itself checked against numerical gradients and the written-out
definition (tests/test_batchnorm.py); here the fast path must agree with it, and
with the definition written out once more below, on (N, D) batches.
"""
import numpy as np
import pytest

from bnlib.batchnorm import batchnorm_backward, batchnorm_forward
from bnlib.batchnorm_fast import batchnorm_backward_fast, batchnorm_forward_fast

SHAPES = [(2, 1), (5, 3), (60, 100), (128, 7)]
DTYPES = [pytest.param(np.float64, 1e-12, id="float64"), pytest.param(np.float32, 2e-5,
                                                                      id="float32")]


def make_case(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    d = shape[1]
    x = rng.normal(3.0, 2.0, shape).astype(dtype)
    dout = rng.normal(size=shape).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, d).astype(dtype)
    beta = rng.normal(size=d).astype(dtype)
    moving_mean = rng.normal(size=d).astype(dtype)
    moving_variance = rng.uniform(0.5, 2.0, d).astype(dtype)
    return x, dout, gamma, beta, moving_mean, moving_variance


@pytest.mark.parametrize("unbiased", [False, True], ids=["biased", "unbiased"])
@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.99])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_path_matches_the_reference(shape, dtype, tol, training, momentum, unbiased):
    x, dout, gamma, beta, mm, mv = make_case(shape, dtype)
    kwargs = dict(training=training, momentum=momentum, eps=1e-3,
                  unbiased_moving_variance=unbiased)
    ref_out, ref_cache, ref_mean, ref_var = batchnorm_forward(x, gamma, beta, mm, mv, **kwargs)
    out, cache, new_mean, new_var = batchnorm_forward_fast(x, gamma, beta, mm, mv, **kwargs)
    ref_grads = batchnorm_backward(dout, ref_cache)
    grads = batchnorm_backward_fast(dout, cache)
    case = f"shape={shape}, dtype={np.dtype(dtype).name}, training={training}, " \
           f"momentum={momentum}, unbiased={unbiased}"
    pairs = [("out", out, ref_out), ("moving_mean", new_mean, ref_mean),
             ("moving_variance", new_var, ref_var), ("dx", grads[0], ref_grads[0]),
             ("dgamma", grads[1], ref_grads[1]), ("dbeta", grads[2], ref_grads[2])]
    for name, got, want in pairs:
        assert got.shape == want.shape and got.dtype == want.dtype, f"{name}, {case}"
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale,
                                   err_msg=f"{name}, {case}")


@pytest.mark.parametrize("eps", [1e-3, 1e-8, 1e-12])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_fast_path_matches_the_definition_at_any_eps(training, eps):
    """Values of spread 1e-5 (variance 1e-10): eps = 1e-12 and 1e-8 give different outputs."""
    rng = np.random.default_rng(1)
    x = 1e-5 * rng.normal(size=(40, 6))
    gamma, beta = rng.uniform(0.5, 2.0, 6), rng.normal(size=6)
    mm, mv = x.mean(axis=0) + 1e-6, x.var(axis=0) * 1.5
    out, *_ = batchnorm_forward_fast(x, gamma, beta, mm, mv, training=training, eps=eps)
    mean, var = (x.mean(axis=0), x.var(axis=0)) if training else (mm, mv)
    expected = gamma * (x - mean) / np.sqrt(var + eps) + beta
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12,
                               err_msg=f"training={training}, eps={eps}")


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_fast_path_leaves_its_inputs_alone(training):
    x, dout, gamma, beta, mm, mv = make_case((8, 3), np.float64, seed=2)
    arrays = dict(x=x, dout=dout, gamma=gamma, beta=beta, moving_mean=mm, moving_variance=mv)
    copies = {name: a.copy() for name, a in arrays.items()}
    _, cache, new_mean, new_var = batchnorm_forward_fast(x, gamma, beta, mm, mv,
                                                         training=training)
    batchnorm_backward_fast(dout, cache)
    for name, a in arrays.items():
        np.testing.assert_array_equal(a, copies[name], err_msg=f"{name} changed")
    if training:  # new arrays: a caller holding the old moving statistics keeps them
        assert new_mean is not mm and new_var is not mv
