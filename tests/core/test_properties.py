"""Properties of the statistics, checked by hypothesis on generated arrays.

* Training-mode batch norm is invariant to a positive per-feature scale a and
  any shift b of its input, once eps scales with the variance:
  BN(a x + b, eps a^2) = BN(x, eps) exactly, in exact arithmetic.
* dx sums to zero over the batch (x_hat sums to zero, so the compact
  backward formula does too).
* Layer and group norm: the same invariance per example (and per group), and
  each example is normalized independently of the others.
* Every finite input within the dtype's range (float16, float32, float64)
  gives finite outputs or a ValueError naming the argument; moderate inputs
  (whose variance the dtype can hold) always give finite outputs, bounded
  as a standardized value must be: |x_hat| <= sqrt(m - 1) for m values.

Tolerances are round-off bounds: a multiple of the dtype's unit round-off
times the conditioning of the case (how large the values are next to their
spread), so a wrong formula fails by orders of magnitude.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bnlib import layernorm, normalize
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward

PROPERTY = settings(max_examples=120, deadline=None)
U64 = 2.0 ** -53  # unit round-off of float64

# (x shape strategy, kept axis) configurations: (N, D) per feature, (N, H, W, C) per channel
SHAPES = st.one_of(
    st.tuples(st.integers(2, 12), st.integers(1, 5)).map(lambda s: (s, -1)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 3), st.integers(1, 3))
    .map(lambda s: (s, -1)),
)


def finite(dtype, **bounds):
    return hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False, **bounds)


def reduced_axes(ndim):
    return tuple(range(ndim - 1))


@st.composite
def batch_and_transform(draw, low=-1e3, high=1e3):
    """x (float64), a > 0 and b per feature, with at least 2 values per statistic."""
    shape, axis = draw(SHAPES)
    assume(np.prod(shape[:-1]) >= 2)
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high)))
    c = shape[-1]
    a = draw(hnp.arrays(np.float64, c, elements=st.floats(1e-3, 1e3)))
    b = draw(hnp.arrays(np.float64, c, elements=st.floats(-1e6, 1e6)))
    return x, a, b


# ---------------------------------------------------------------- batch norm
@PROPERTY
@given(case=batch_and_transform())
def test_batch_norm_is_invariant_to_positive_scale_and_shift(case):
    x, a, b = case
    c, axes = x.shape[-1], reduced_axes(x.ndim)
    ones, zeros = np.ones(c), np.zeros(c)
    eps = 1e-3
    y = a * x + b
    out_x = batchnorm_forward(x, ones, zeros, zeros, ones, training=True, eps=eps)[0]
    # eps is a variance: scaling x by a scales it by a**2 (one number: take the feature's a)
    for j in range(c):
        out_y = batchnorm_forward(y[..., j:j + 1], ones[:1], zeros[:1], zeros[:1], ones[:1],
                                  training=True, eps=eps * a[j] ** 2)[0][..., 0]
        # y carries a rounding of U64 * |y| per entry: relative to y's spread, that is
        # the error an exact algorithm would already show
        spread = a[j] * np.sqrt(x[..., j].var() + eps)
        tol = 64 * U64 * (np.abs(y[..., j]).max() / spread + 1.0)
        np.testing.assert_allclose(out_y, out_x[..., j], rtol=0, atol=tol,
                                   err_msg=f"feature {j}, a={a[j]}, b={b[j]}")


@PROPERTY
@given(case=batch_and_transform(), seed=st.integers(0, 2**32 - 1))
def test_batch_norm_dx_sums_to_zero_over_the_batch(case, seed):
    x, a, _ = case
    c, axes = x.shape[-1], reduced_axes(x.ndim)
    gamma = a  # any positive scale
    dout = np.random.default_rng(seed).normal(size=x.shape)
    _, cache, _, _ = batchnorm_forward(x, gamma, np.zeros(c), np.zeros(c), np.ones(c),
                                       training=True)
    dx, dgamma, _ = batchnorm_backward(dout, cache)
    m = x.size // c
    # the terms the closed form adds, each rounded to U64 of its size
    x_hat_size = np.abs(cache.x_hat).sum(axis=axes)
    terms = gamma * cache.inv_std.reshape(-1) * (np.abs(dout).sum(axis=axes)
                                                 + np.abs(dgamma) * x_hat_size)
    np.testing.assert_array_less(np.abs(dx.sum(axis=axes)), 8 * m * U64 * terms + 1e-300)


@settings(max_examples=80, deadline=None)
@given(offset=st.floats(-1e6, 1e6), spread_exp=st.integers(-2, 3),
       z=hnp.arrays(np.float64, (16, 3), elements=st.floats(-3, 3)))
def test_float32_batch_norm_accuracy_does_not_depend_on_the_offset(offset, spread_exp, z):
    """Error bounded by float32 round-off of x's spread, not of its distance from zero."""
    spread = 10.0 ** spread_exp
    x32 = (offset + spread * z).astype(np.float32)
    x64 = x32.astype(np.float64)
    var = x64.var(axis=0)
    assume(np.all(var > (1e-3 * spread) ** 2))  # float32 kept the data apart
    c = x32.shape[1]
    out = batchnorm_forward(x32, np.ones(c), np.zeros(c), np.zeros(c), np.ones(c),
                            training=True, eps=1e-12)[0]
    ref = (x64 - x64.mean(axis=0)) / np.sqrt(var + 1e-12)
    # shifted by the first row, the values are at most max|x - x0| apart: that, not |x|,
    # sets float32's error (2**-24 of it per rounding)
    span = np.abs(x64 - x64[0]).max(axis=0)
    tol = 16 * 2.0 ** -24 * (span / np.sqrt(var) + 1.0)
    np.testing.assert_array_less(np.abs(out - ref).max(axis=0), tol)


# ---------------------------------------------------------------- layer and group norm
@st.composite
def examples_and_transform(draw):
    """x (N, ..., C) float64, groups dividing C, per-example a > 0 and b."""
    n = draw(st.integers(1, 5))
    positions = draw(st.sampled_from([(), (2,), (2, 3)]))
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    assume(int(np.prod(positions)) * (c // groups) >= 2)
    x = draw(hnp.arrays(np.float64, (n, *positions, c), elements=st.floats(-1e3, 1e3)))
    a = draw(hnp.arrays(np.float64, n, elements=st.floats(1e-3, 1e3)))
    b = draw(hnp.arrays(np.float64, n, elements=st.floats(-1e6, 1e6)))
    return x, groups, a, b


@PROPERTY
@given(case=examples_and_transform())
def test_group_norm_is_invariant_per_example(case):
    x, groups, a, b = case
    c, eps = x.shape[-1], 1e-3
    ones, zeros = np.ones(c), np.zeros(c)
    out_x = layernorm.group_norm_forward(x, ones, zeros, groups, eps)[0]
    for n in range(len(x)):
        y = a[n] * x[n:n + 1] + b[n]
        out_y = layernorm.group_norm_forward(y, ones, zeros, groups, eps * a[n] ** 2)[0]
        xg = x[n].reshape(-1, groups, c // groups)
        spread = a[n] * np.sqrt(xg.var(axis=(0, 2)).min() + eps)
        tol = 64 * U64 * (np.abs(y).max() / spread + 1.0)
        np.testing.assert_allclose(out_y[0], out_x[n], rtol=0, atol=tol,
                                   err_msg=f"example {n}, a={a[n]}, b={b[n]}")


@PROPERTY
@given(case=examples_and_transform())
def test_layer_norm_of_an_example_does_not_depend_on_the_others(case):
    x, groups, _, _ = case
    c = x.shape[-1]
    whole = layernorm.group_norm_forward(x, np.ones(c), np.zeros(c), groups)[0]
    for n in range(len(x)):
        alone = layernorm.group_norm_forward(x[n:n + 1], np.ones(c), np.zeros(c), groups)[0]
        np.testing.assert_allclose(alone[0], whole[n], rtol=0, atol=1e-12)


# ---------------------------------------------------------------- the whole range
def clear_error(error: ValueError, names) -> bool:
    return any(re.match(rf"{name}\b.*\bmust\b.*\bgot\b", str(error), re.S) for name in names)


def finite_or_clear(call, names):
    """Run call(); a ValueError must name one of ``names``; a result must be finite."""
    try:
        result = call()
    except ValueError as error:
        assert clear_error(error, names), f"unclear message: {error}"
        return None
    for part in result if isinstance(result, tuple) else (result,):
        if isinstance(part, np.ndarray):
            assert np.isfinite(part).all(), f"non-finite output: {part}"
    return result


DTYPES = [np.float16, np.float32, np.float64]
MODERATE = {np.float16: 100.0, np.float32: 1e18, np.float64: 1e150}  # variance fits the dtype


def arrays_of(dtype, bound=None):
    shape = st.tuples(st.integers(2, 8), st.integers(1, 4))
    bound = None if bound is None else float(np.dtype(dtype).type(bound))  # representable
    kw = {} if bound is None else {"min_value": -bound, "max_value": bound}
    return hnp.arrays(dtype, shape, elements=finite(dtype, **kw))


def run_every_statistic(x):
    """Each function of the core that takes statistics of x, on x: its result or None."""
    c = x.shape[-1]
    ones, zeros = np.ones(c), np.zeros(c)
    results = {}
    for training in (True, False):
        results[f"batchnorm training={training}"] = finite_or_clear(
            lambda: batchnorm_forward(x, ones, zeros, zeros, ones, training=training), ["x"])
        fwd = results[f"batchnorm training={training}"]
        if fwd is not None:
            dout = np.ones_like(x)
            results[f"batchnorm_backward training={training}"] = finite_or_clear(
                lambda: batchnorm_backward(dout, fwd[1]), ["dout"])
    if c >= 2:
        results["layer_norm"] = finite_or_clear(
            lambda: layernorm.layer_norm_forward(x, ones, zeros), ["x"])
    results["standardize"] = finite_or_clear(lambda: normalize.standardize(x), ["x"])
    results["min_max_scale"] = finite_or_clear(lambda: normalize.min_max_scale(x), ["x"])
    return results


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_finite_input_gives_finite_outputs_or_a_clear_error(dtype):
    @settings(max_examples=150, deadline=None)
    @given(x=arrays_of(dtype))
    def check(x):
        run_every_statistic(x)
    check()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_moderate_input_gives_finite_bounded_outputs(dtype):
    @settings(max_examples=150, deadline=None)
    @given(x=arrays_of(dtype, MODERATE[dtype]))
    def check(x):
        results = run_every_statistic(x)
        m = x.shape[0]
        required = ["batchnorm training=True", "batchnorm_backward training=True",
                    "batchnorm training=False"]
        x64 = x.astype(np.float64)
        std = x64.std(axis=0)
        holds_std = np.all(std >= 2 * np.finfo(dtype).smallest_subnormal)
        if np.all(np.ptp(x64, axis=0) > 0) and holds_std:
            required += ["standardize", "min_max_scale"]  # x varies, and the dtype holds its std
        for name in required:
            assert results[name] is not None, f"{name} refused a moderate input"
        # a standardized value is at most sqrt(m - 1) from the mean, in units of std
        bound = np.sqrt(m - 1) * (1 + 1e-2) + 1e-2
        out = results["batchnorm training=True"][0].astype(np.float64)
        assert np.abs(out).max() <= bound, f"|x_hat| {np.abs(out).max()} > {bound}"
        info = np.finfo(dtype)
        resolved = (std >= info.tiny) & (std >= 64 * info.eps * np.abs(x64).max(axis=0))
        if results["standardize"] is not None and np.all(resolved):
            # standardize keeps NumPy's mean, rounded to x's dtype: z is only as good as that
            # rounding next to the spread (and a subnormal std has fewer digits)
            z = results["standardize"][0].astype(np.float64)
            assert np.abs(z).max() <= bound, f"|z| {np.abs(z).max()} > {bound}"
    check()
