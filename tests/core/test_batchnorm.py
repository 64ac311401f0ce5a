"""Tests of bnlib.batchnorm against numerical gradients, closed forms and plain NumPy.

Every reference below is written out with NumPy in this file (or is a
centred-difference gradient), so each test reads as a specification of what
batch normalization computes.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnlib.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward, fold_into_dense
from bnlib.gradcheck import numerical_gradient, rel_error

# (x shape, kept axes): the Keras meaning of ``axis``.
CONFIGS = [
    pytest.param((5, 4), -1, id="ND-axis-1"),
    pytest.param((3, 2, 3, 4), -1, id="NHWC-axis-1"),
    pytest.param((3, 2, 3, 4), (1, 2, 3), id="NHWC-axis123"),
    pytest.param((4, 3, 2, 2), (1, 3), id="NHWC-axis13"),
    pytest.param((4, 3, 5), (-2,), id="NLC-axis-2"),
]
# The same configurations as plain tuples, for hypothesis.
CONFIG_VALUES = [((5, 4), -1), ((3, 2, 3, 4), -1), ((3, 2, 3, 4), (1, 2, 3)),
                 ((4, 3, 2, 2), (1, 3)), ((4, 3, 5), (-2,))]


# ---------------------------------------------------------------- references
def kept_and_reduced(ndim, axis):
    kept = (axis,) if isinstance(axis, int) else tuple(axis)
    kept = tuple(sorted(a % ndim for a in kept))
    return kept, tuple(a for a in range(ndim) if a not in kept)


def param_shape(shape, axis):
    kept, _ = kept_and_reduced(len(shape), axis)
    return tuple(shape[a] for a in kept)


def broadcast(v, shape, axis):
    """Reshape a kept-axes vector so it broadcasts against x of ``shape``."""
    kept, _ = kept_and_reduced(len(shape), axis)
    return np.reshape(v, [shape[a] if a in kept else 1 for a in range(len(shape))])


def reference_forward(x, gamma, beta, axis, eps):
    """Training-mode batch norm, straight from the definition."""
    _, reduced = kept_and_reduced(x.ndim, axis)
    mean = np.mean(x, axis=reduced, keepdims=True)
    var = np.var(x, axis=reduced, keepdims=True)          # biased: divides by n
    x_hat = (x - mean) / np.sqrt(var + eps)
    return broadcast(gamma, x.shape, axis) * x_hat + broadcast(beta, x.shape, axis)


def reference_inference(x, gamma, beta, moving_mean, moving_variance, axis, eps):
    s = x.shape
    x_hat = (x - broadcast(moving_mean, s, axis)) / np.sqrt(broadcast(moving_variance, s, axis)
                                                            + eps)
    return broadcast(gamma, s, axis) * x_hat + broadcast(beta, s, axis)


def reference_backward(dout, x, gamma, moving_mean, moving_variance, axis, eps, training):
    """dx, dgamma, dbeta by the chain rule, one stage of the forward pass at a time.

    Forward stages: mu = mean(x); xc = x - mu; var = mean(xc**2); std = sqrt(var + eps);
    x_hat = xc / std; out = gamma * x_hat + beta (in inference, mu and var are the
    moving statistics, constants).
    """
    kept, reduced = kept_and_reduced(x.ndim, axis)
    g = broadcast(gamma, x.shape, axis)
    m = int(np.prod([x.shape[a] for a in reduced]))
    if training:
        mu = np.mean(x, axis=reduced, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=reduced, keepdims=True)
    else:
        mu = broadcast(moving_mean, x.shape, axis)
        var = broadcast(moving_variance, x.shape, axis)
    xc = x - mu
    std = np.sqrt(var + eps)
    x_hat = xc / std
    dgamma = np.sum(dout * x_hat, axis=reduced).reshape(param_shape(x.shape, axis))
    dbeta = np.sum(dout, axis=reduced).reshape(param_shape(x.shape, axis))
    dx_hat = dout * g
    dxc = dx_hat / std                                     # through x_hat = xc / std
    if training:
        dstd = np.sum(-dx_hat * xc / std ** 2, axis=reduced, keepdims=True)
        dvar = dstd / (2.0 * std)                          # through std = sqrt(var + eps)
        dxc = dxc + dvar * 2.0 * xc / m                    # through var = mean(xc**2)
        dmu = -np.sum(dxc, axis=reduced, keepdims=True)    # through xc = x - mu
        dx = dxc + dmu / m                                 # through mu = mean(x)
    else:
        dx = dxc
    return dx, dgamma, dbeta


def make_case(shape, axis, seed=0, dtype=np.float64):
    """Random x, gamma, beta, moving_mean, moving_variance (variance kept positive)."""
    rng = np.random.default_rng(seed)
    p = param_shape(shape, axis)
    x = (rng.normal(size=shape) * 2.0 + 0.5).astype(dtype)
    gamma = rng.normal(size=p) + 1.5
    beta = rng.normal(size=p)
    moving_mean = rng.normal(size=p)
    moving_variance = rng.uniform(0.5, 2.0, size=p)
    return x, gamma, beta, moving_mean, moving_variance


# ------------------------------------------------------------- gradient check
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_backward_matches_numerical_gradient(shape, axis, training):
    eps = 1e-3
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=1)
    dout = np.random.default_rng(2).normal(size=shape)

    def forward(x_, gamma_, beta_):
        return batchnorm_forward(x_, gamma_, beta_, mm, mv, training=training, eps=eps,
                                 axis=axis)[0]

    _, cache, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=training, eps=eps,
                                       axis=axis)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    numeric = {
        "dx": numerical_gradient(lambda v: forward(v, gamma, beta), x, dout),
        "dgamma": numerical_gradient(lambda v: forward(x, v, beta), gamma, dout),
        "dbeta": numerical_gradient(lambda v: forward(x, gamma, v), beta, dout),
    }
    case = f"shape={shape}, axis={axis}, training={training}"
    for name, analytic in (("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)):
        assert analytic.shape == numeric[name].shape, f"{name} shape, {case}"
        err = rel_error(analytic, numeric[name])
        assert err < 1e-7, f"{name}: relative error {err:.2e} >= 1e-7 for {case}"


# ------------------------------------------------------------------- forward
@pytest.mark.parametrize("eps", [1e-3, 0.5])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_training_forward_matches_reference(shape, axis, eps):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=3)
    out, _, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=True, eps=eps, axis=axis)
    expected = reference_forward(x, gamma, beta, axis, eps)
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12,
                               err_msg=f"shape={shape}, axis={axis}, eps={eps}")


@pytest.mark.parametrize("unbiased", [False, True], ids=["biased", "unbiased"])
@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.99])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_moving_statistics_update(shape, axis, momentum, unbiased):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=4)
    _, reduced = kept_and_reduced(x.ndim, axis)
    p = param_shape(shape, axis)
    n = x.size // int(np.prod(p))
    batch_mean = np.mean(x, axis=reduced).reshape(p)
    batch_var = np.var(x, axis=reduced).reshape(p)                 # divides by n
    if unbiased:
        batch_var = np.var(x, axis=reduced, ddof=1).reshape(p)     # divides by n - 1
        assert n > 1
    _, _, new_mean, new_var = batchnorm_forward(
        x, gamma, beta, mm, mv, training=True, momentum=momentum, axis=axis,
        unbiased_moving_variance=unbiased)
    case = f"shape={shape}, axis={axis}, momentum={momentum}, unbiased={unbiased}"
    assert new_mean.shape == p and new_var.shape == p, case
    np.testing.assert_allclose(new_mean, momentum * mm + (1 - momentum) * batch_mean,
                               rtol=1e-12, atol=1e-12, err_msg=f"moving_mean, {case}")
    np.testing.assert_allclose(new_var, momentum * mv + (1 - momentum) * batch_var,
                               rtol=1e-12, atol=1e-12, err_msg=f"moving_variance, {case}")


@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_unbiased_moving_variance_is_n_over_n_minus_1_times_biased(shape, axis):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=5)
    n = x.size // int(np.prod(param_shape(shape, axis)))
    kwargs = dict(training=True, momentum=0.0, axis=axis)
    biased = batchnorm_forward(x, gamma, beta, mm, mv, **kwargs)[3]
    unbiased = batchnorm_forward(x, gamma, beta, mm, mv, unbiased_moving_variance=True,
                                 **kwargs)[3]
    np.testing.assert_allclose(unbiased, biased * n / (n - 1), rtol=1e-12,
                               err_msg=f"shape={shape}, axis={axis}, n={n}")


@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_inference_uses_moving_statistics_and_returns_them_unchanged(shape, axis):
    eps = 1e-3
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=6)
    mm_before, mv_before = mm.copy(), mv.copy()
    out, _, new_mean, new_var = batchnorm_forward(x, gamma, beta, mm, mv, training=False,
                                                  momentum=0.5, eps=eps, axis=axis)
    case = f"shape={shape}, axis={axis}"
    np.testing.assert_allclose(out, reference_inference(x, gamma, beta, mm, mv, axis, eps),
                               rtol=1e-12, atol=1e-12, err_msg=case)
    np.testing.assert_array_equal(new_mean, mm_before, err_msg=f"moving_mean, {case}")
    np.testing.assert_array_equal(new_var, mv_before, err_msg=f"moving_variance, {case}")
    # and it is not the batch statistics: they differ from the moving ones here
    assert not np.allclose(out, reference_forward(x, gamma, beta, axis, eps)), case


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_forward_does_not_modify_its_inputs(shape, axis, training):
    arrays = make_case(shape, axis, seed=7)
    copies = [a.copy() for a in arrays]
    batchnorm_forward(*arrays, training=training, axis=axis)
    for name, a, c in zip(["x", "gamma", "beta", "moving_mean", "moving_variance"],
                          arrays, copies):
        np.testing.assert_array_equal(a, c, err_msg=f"{name} changed, shape={shape}, "
                                                    f"axis={axis}, training={training}")


def test_single_example_in_inference_mode_works():
    x, gamma, beta, mm, mv = make_case((1, 4), -1, seed=8)
    out, _, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=False)
    np.testing.assert_allclose(out, reference_inference(x, gamma, beta, mm, mv, -1, 1e-3),
                               rtol=1e-12)


# ---------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(config=st.sampled_from(CONFIG_VALUES), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.1, 100.0), shift=st.floats(-1e3, 1e3))
def test_training_output_is_invariant_to_scaling_and_shifting(config, seed, scale, shift):
    shape, axis = config
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=seed)
    eps = 1e-12   # tiny next to the variance (>= 1e-2 * 4 here), so it cannot hide a change
    kwargs = dict(training=True, eps=eps, axis=axis)
    out = batchnorm_forward(x, gamma, beta, mm, mv, **kwargs)[0]
    moved = batchnorm_forward(scale * x + shift, gamma, beta, mm, mv, **kwargs)[0]
    np.testing.assert_allclose(moved, out, rtol=1e-6, atol=1e-6,
                               err_msg=f"shape={shape}, axis={axis}, scale={scale}, "
                                       f"shift={shift}")


@pytest.mark.parametrize("eps", [1e-3, 0.5, 4.0])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_output_mean_is_beta_and_std_is_gamma_shrunk_by_eps(shape, axis, eps):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=9)
    _, reduced = kept_and_reduced(x.ndim, axis)
    p = param_shape(shape, axis)
    out = batchnorm_forward(x, gamma, beta, mm, mv, training=True, eps=eps, axis=axis)[0]
    var = np.var(x, axis=reduced).reshape(p)
    case = f"shape={shape}, axis={axis}, eps={eps}"
    np.testing.assert_allclose(np.mean(out, axis=reduced).reshape(p), beta, rtol=1e-10,
                               atol=1e-12, err_msg=f"mean, {case}")
    np.testing.assert_allclose(np.std(out, axis=reduced).reshape(p),
                               np.abs(gamma) * np.sqrt(var / (var + eps)), rtol=1e-10,
                               err_msg=f"std, {case}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape, axis", [((256, 8), -1), ((16, 4, 4, 3), -1),
                                         ((64, 2, 2, 3), (1, 2, 3))])
def test_float32_far_from_zero_is_stable(shape, axis, seed):
    """Offset 1e4, spread 1e-2: a naive E[x^2] - E[x]^2 in float32 would be pure noise."""
    rng = np.random.default_rng(seed)
    x32 = (1e4 + 1e-2 * rng.standard_normal(shape)).astype(np.float32)
    p = param_shape(shape, axis)
    gamma, beta = np.ones(p, np.float32), np.zeros(p, np.float32)
    mm, mv = np.zeros(p, np.float32), np.ones(p, np.float32)
    eps = 1e-8
    out, _, new_mean, new_var = batchnorm_forward(x32, gamma, beta, mm, mv, training=True,
                                                  momentum=0.0, eps=eps, axis=axis)
    x64 = x32.astype(np.float64)
    _, reduced = kept_and_reduced(x64.ndim, axis)
    case = f"shape={shape}, axis={axis}, seed={seed}"
    assert out.dtype == np.float32, case
    # the float32 data still vary (quantized to ~1e-3), so the reference is well defined
    assert np.all(np.var(x64, axis=reduced) > 1e-5), case
    np.testing.assert_allclose(out, reference_forward(x64, gamma, beta, axis, eps),
                               atol=1e-4, err_msg=f"output, {case}")
    # one float32 step at 1e4 is ~1e-3: the mean cannot be closer than that
    np.testing.assert_allclose(new_mean, np.mean(x64, axis=reduced).reshape(p), rtol=0,
                               atol=1e-3, err_msg=f"moving_mean, {case}")
    np.testing.assert_allclose(new_var, np.var(x64, axis=reduced).reshape(p), rtol=1e-4,
                               err_msg=f"moving_variance, {case}")


@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_training_dx_sums_to_zero_and_is_orthogonal_to_x_hat(shape, axis):
    """Exact for eps -> 0 (with eps, sum(x_hat**2) = m var / (var + eps), not m)."""
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=10)
    eps = 1e-12
    dout = np.random.default_rng(11).normal(size=shape)
    _, cache, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=True, eps=eps,
                                       axis=axis)
    dx = batchnorm_backward(dout, cache)[0]
    _, reduced = kept_and_reduced(x.ndim, axis)
    x_hat = (x - x.mean(axis=reduced, keepdims=True)) / np.sqrt(
        x.var(axis=reduced, keepdims=True) + eps)
    scale = np.sum(np.abs(dx), axis=reduced)   # what round-off is measured against
    case = f"shape={shape}, axis={axis}"
    assert np.all(scale > 1e-3), case
    np.testing.assert_array_less(np.abs(np.sum(dx, axis=reduced)), 1e-12 * scale,
                                 err_msg=f"sum of dx, {case}")
    # eps leaves a residual of relative size eps / var (var can be ~1e-3 with N = 3)
    np.testing.assert_array_less(np.abs(np.sum(dx * x_hat, axis=reduced)), 1e-8 * scale,
                                 err_msg=f"dx . x_hat, {case}")


# --------------------------------------------------------------------- layer
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [4, (4,), (2, 3, 5)])
def test_layer_initial_parameters(shape, dtype):
    layer = BatchNorm(shape, dtype=dtype)
    expected_shape = (shape,) if isinstance(shape, int) else shape
    for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                        ("moving_variance", 1.0)):
        arr = getattr(layer, name)
        assert arr.shape == expected_shape, f"{name} shape for shape={shape}"
        assert arr.dtype == dtype, f"{name} dtype for dtype={dtype.__name__}"
        np.testing.assert_array_equal(arr, np.full(expected_shape, value), err_msg=name)
    assert layer.dgamma is None and layer.dbeta is None


@pytest.mark.parametrize("momentum", [0.5, 0.99])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_layer_training_calls_update_moving_statistics(shape, axis, momentum):
    rng = np.random.default_rng(12)
    p = param_shape(shape, axis)
    _, reduced = kept_and_reduced(len(shape), axis)
    layer = BatchNorm(p, momentum=momentum, axis=axis)
    mean, var = np.zeros(p), np.ones(p)
    for step in range(3):
        x = rng.normal(size=shape) * (step + 1) + step
        layer(x, training=True)
        mean = momentum * mean + (1 - momentum) * x.mean(axis=reduced).reshape(p)
        var = momentum * var + (1 - momentum) * x.var(axis=reduced).reshape(p)
        case = f"step {step}, shape={shape}, axis={axis}, momentum={momentum}"
        np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12, err_msg=case)
        np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-12, err_msg=case)
    # an inference call reads them without changing them
    out = layer(rng.normal(size=shape), training=False)
    assert out.shape == shape
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_layer_matches_the_written_out_references(shape, axis, training):
    """The layer against plain NumPy: the definition forward, the staged chain rule backward."""
    eps = 1e-3
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=13)
    dout = np.random.default_rng(14).normal(size=shape)
    layer = BatchNorm(param_shape(shape, axis), axis=axis, eps=eps)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    layer.moving_mean, layer.moving_variance = mm.copy(), mv.copy()
    out = layer(x, training=training)
    dx = layer.backward(dout)
    if training:
        expected_out = reference_forward(x, gamma, beta, axis, eps)
    else:
        expected_out = reference_inference(x, gamma, beta, mm, mv, axis, eps)
    expected_dx, expected_dgamma, expected_dbeta = reference_backward(
        dout, x, gamma, mm, mv, axis, eps, training)
    case = f"shape={shape}, axis={axis}, training={training}"
    np.testing.assert_allclose(out, expected_out, rtol=1e-12, atol=1e-12, err_msg=f"out, {case}")
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-9, atol=1e-12, err_msg=f"dx, {case}")
    np.testing.assert_allclose(layer.dgamma, expected_dgamma, rtol=1e-12, atol=1e-12,
                               err_msg=f"dgamma, {case}")
    np.testing.assert_allclose(layer.dbeta, expected_dbeta, rtol=1e-12, atol=1e-12,
                               err_msg=f"dbeta, {case}")


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", CONFIGS)
def test_backward_matches_the_staged_chain_rule(shape, axis, training):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=17)
    dout = np.random.default_rng(18).normal(size=shape)
    _, cache, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=training, axis=axis)
    expected = reference_backward(dout, x, gamma, mm, mv, axis, 1e-3, training)
    case = f"shape={shape}, axis={axis}, training={training}"
    for name, got, want in zip(("dx", "dgamma", "dbeta"), batchnorm_backward(dout, cache),
                               expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{name}, {case}")


def test_layer_backward_before_forward_raises():
    with pytest.raises(ValueError, match="^backward must follow a forward call"):
        BatchNorm(3).backward(np.ones((2, 3)))


# ------------------------------------------------------------------- folding
@pytest.mark.parametrize("with_bias", [True, False], ids=["b", "b=None"])
@pytest.mark.parametrize("d_in, d_out", [(3, 4), (7, 2)])
def test_fold_into_dense_equals_dense_then_inference_batchnorm(d_in, d_out, with_bias):
    rng = np.random.default_rng(15)
    x = rng.normal(size=(6, d_in))
    W = rng.normal(size=(d_in, d_out))
    b = rng.normal(size=d_out) if with_bias else None
    gamma, beta = rng.normal(size=d_out) + 1.0, rng.normal(size=d_out)
    mm, mv = rng.normal(size=d_out), rng.uniform(0.2, 3.0, size=d_out)
    eps = 1e-3
    dense = x @ W + (b if with_bias else 0.0)
    expected = reference_inference(dense, gamma, beta, mm, mv, -1, eps)
    W_f, b_f = fold_into_dense(W, b, gamma, beta, mm, mv, eps=eps)
    assert W_f.shape == (d_in, d_out) and b_f.shape == (d_out,)
    np.testing.assert_allclose(x @ W_f + b_f, expected, rtol=1e-12, atol=1e-12,
                               err_msg=f"d_in={d_in}, d_out={d_out}, bias={with_bias}")


# ----------------------------------------------------------------- bad input
def _good(shape=(4, 3), axis=-1):
    x, gamma, beta, mm, mv = make_case(shape, axis, seed=16)
    return dict(x=x, gamma=gamma, beta=beta, moving_mean=mm, moving_variance=mv)


def _call(training=True, momentum=0.99, eps=1e-3, axis=-1, **arrays):
    """batchnorm_forward on a good (4, 3) case, with some of its arrays replaced."""
    args = {**_good(), **arrays}
    return batchnorm_forward(args["x"], args["gamma"], args["beta"], args["moving_mean"],
                             args["moving_variance"], training=training, momentum=momentum,
                             eps=eps, axis=axis)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_one_dimensional_x_raises(training):
    with pytest.raises(ValueError, match=r"^x must have a batch axis"):
        _call(training, x=np.arange(3.0))


@pytest.mark.parametrize("name, bad", [
    ("gamma", np.ones(4)), ("beta", np.zeros((3, 1))), ("moving_mean", np.zeros(2)),
    ("moving_variance", np.ones((1, 3))),
])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_parameter_shape_mismatch_raises(name, bad, training):
    with pytest.raises(ValueError, match=rf"^{name} must have shape \(3,\)"):
        _call(training, **{name: bad})


@pytest.mark.parametrize("name", ["x", "gamma", "beta", "moving_mean", "moving_variance"])
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(name, bad_value):
    arr = _good()[name].copy()
    arr.flat[1] = bad_value
    with pytest.raises(ValueError, match=rf"^{name} must contain only finite values"):
        _call(True, **{name: arr})


def test_negative_moving_variance_raises():
    with pytest.raises(ValueError, match="^moving_variance must be >= 0"):
        _call(False, moving_variance=np.array([1.0, -0.5, 1.0]))


@pytest.mark.parametrize("shape, axis", [((1, 3), -1), ((1, 2, 2, 3), (1, 2, 3)),
                                         ((1, 4, 1, 3), (1, 3))])
def test_one_value_per_statistic_in_training_mode_raises(shape, axis):
    """The rule counts values per statistic: one (N, D) example, or one image per pixel."""
    x, gamma, beta, mm, mv = make_case(shape, axis)
    with pytest.raises(ValueError, match=r"^x must hold at least 2 values per statistic .* "
                                         r"got a batch of 1 \(x shape .*m = 1\)"):
        batchnorm_forward(x, gamma, beta, mm, mv, training=True, axis=axis)


@pytest.mark.parametrize("shape, axis", [((1, 2, 2, 3), -1), ((1, 5, 3), -1),
                                         ((1, 2, 3, 4), (1, 3))])
def test_one_image_in_training_mode_is_normalized_over_its_positions(shape, axis):
    """One (1, H, W, C) image has H * W values per channel: enough, as in Keras."""
    x, gamma, beta, mm, mv = make_case(shape, axis)
    out, cache, _, _ = batchnorm_forward(x, gamma, beta, mm, mv, training=True, axis=axis)
    np.testing.assert_allclose(out, reference_forward(x, gamma, beta, axis, 1e-3), rtol=1e-12,
                               atol=1e-12)
    dout = np.random.default_rng(5).normal(size=shape)
    for got, want in zip(batchnorm_backward(dout, cache),
                         reference_backward(dout, x, gamma, mm, mv, axis, 1e-3, True)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, -1e-3, np.nan, np.inf])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_bad_eps_raises(eps, training):
    with pytest.raises(ValueError, match="^eps must be a small positive number"):
        _call(training, eps=eps)


@pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5, np.nan])
def test_momentum_outside_unit_interval_raises(momentum):
    with pytest.raises(ValueError, match=r"^momentum .* must be in \[0, 1\)"):
        _call(True, momentum=momentum)


@pytest.mark.parametrize("shape, axis, pattern", [
    ((4, 3), 0, "must not include the batch axis 0"),
    ((4, 3), -2, "must not include the batch axis 0"),
    ((4, 2, 2, 3), (0, 3), "must not include the batch axis 0"),
    ((4, 3), 2, "got axis 2 out of range"),
    ((4, 2, 2, 3), (1, 4), "got axis 4 out of range"),
    ((4, 3), -3, "got axis -3 out of range"),
    ((4, 3), (), "axis must name at least one"),
])
def test_bad_axis_raises(shape, axis, pattern):
    good_axis = -1
    x, gamma, beta, mm, mv = make_case(shape, good_axis)
    with pytest.raises(ValueError, match=pattern):
        batchnorm_forward(x, gamma, beta, mm, mv, training=True, axis=axis)


@pytest.mark.parametrize("bad_x", [
    np.array([["a", "b", "c"]] * 4),
    np.ones((4, 3), dtype=complex),
    np.array([[object()] * 3] * 4, dtype=object),
], ids=["str", "complex", "object"])
def test_non_numeric_dtype_raises(bad_x):
    with pytest.raises(ValueError, match=r"^x must be an array of real numbers; got dtype"):
        _call(True, x=bad_x)


@pytest.mark.parametrize("int_dtype", [np.int8, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_integer_x_is_converted_to_float64(int_dtype, training):
    x_int = np.array([[1, 5, 2], [3, 0, 7], [4, 4, 1], [9, 2, 6]], dtype=int_dtype)
    args = _good()
    out, cache, new_mean, new_var = batchnorm_forward(
        x_int, args["gamma"], args["beta"], args["moving_mean"], args["moving_variance"],
        training=training)
    x64 = x_int.astype(np.float64)
    if training:
        expected = reference_forward(x64, args["gamma"], args["beta"], -1, 1e-3)
    else:
        expected = reference_inference(x64, args["gamma"], args["beta"], args["moving_mean"],
                                       args["moving_variance"], -1, 1e-3)
    case = f"dtype={np.dtype(int_dtype).name}, training={training}"
    for name, arr in (("out", out), ("moving_mean", new_mean), ("moving_variance", new_var)):
        assert arr.dtype == np.float64, f"{name} dtype, {case}"
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12, err_msg=case)


def test_backward_dout_shape_mismatch_raises():
    _, cache, _, _ = _call(True)
    with pytest.raises(ValueError, match=r"^dout must have shape \(4, 3\)"):
        batchnorm_backward(np.ones((3, 4)), cache)


@pytest.mark.parametrize("name, bad", [("b", np.zeros(3)), ("gamma", np.ones(2)),
                                       ("beta", np.zeros(5)), ("moving_mean", np.zeros(1)),
                                       ("moving_variance", np.ones((4, 1)))])
def test_fold_into_dense_shape_mismatch_raises(name, bad):
    vectors = dict(b=np.zeros(4), gamma=np.ones(4), beta=np.zeros(4),
                   moving_mean=np.zeros(4), moving_variance=np.ones(4))
    vectors[name] = bad
    with pytest.raises(ValueError, match=rf"^{name} must have shape \(4,\)"):
        fold_into_dense(np.ones((3, 4)), **vectors)


def test_fold_into_dense_negative_moving_variance_raises():
    with pytest.raises(ValueError, match="^moving_variance must be >= 0"):
        fold_into_dense(np.ones((3, 2)), None, np.ones(2), np.zeros(2), np.zeros(2),
                        np.array([1.0, -2.0]))


@pytest.mark.parametrize("axis", [1.0, (1, "2")])
def test_non_integer_axis_raises(axis):
    x = np.ones((4, 3, 2))
    ones = np.ones(3)
    with pytest.raises(ValueError, match="axis"):
        batchnorm_forward(x, ones, ones, ones, ones, training=True, axis=axis)


def test_float32_accuracy_on_a_large_batch_with_few_channels():
    """262,144 values per channel: float32 sums must not drift from the float64 result."""
    x = np.random.default_rng(0).normal(1.0, 2.0, (256, 32, 32, 4)).astype(np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, _, mean, var = batchnorm_forward(x, ones, zeros, zeros, ones, training=True,
                                          momentum=0.0)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(axis=(0, 1, 2))) / np.sqrt(x64.var(axis=(0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(out, ref, atol=1e-5, err_msg="normalized output")
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 1, 2)), rtol=1e-6)


def test_float32_backward_sums_on_a_large_batch_with_few_channels():
    """dgamma and dbeta add 262,144 float32 values per channel: they must match float64."""
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (256, 32, 32, 4)).astype(np.float32)
    dout = rng.normal(1.0, 1.0, x.shape).astype(np.float32)   # mean 1: sums far from 0
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    _, cache, _, _ = batchnorm_forward(x, ones, zeros, zeros, ones, training=True)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32
    x_hat64, dout64 = cache.x_hat.astype(np.float64), dout.astype(np.float64)
    np.testing.assert_allclose(dbeta, dout64.sum(axis=(0, 1, 2)), rtol=1e-6, err_msg="dbeta")
    np.testing.assert_allclose(dgamma, (dout64 * x_hat64).sum(axis=(0, 1, 2)), rtol=1e-5,
                               atol=1e-2, err_msg="dgamma")
