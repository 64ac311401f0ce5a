"""Tests of bnlib.gradcheck: numerical gradients of functions whose gradient is known."""
import numpy as np
import pytest

from bnlib.gradcheck import numerical_gradient, rel_error

SHAPES = [(1,), (5,), (3, 4), (2, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_numerical_gradient_of_square(shape):
    rng = np.random.default_rng(0)
    x, dout = rng.normal(size=shape), rng.normal(size=shape)
    grad = numerical_gradient(lambda v: v ** 2, x, dout)
    assert rel_error(grad, 2 * x * dout) < 1e-8, f"shape={shape}"


@pytest.mark.parametrize("shape", SHAPES)
def test_numerical_gradient_of_sin(shape):
    rng = np.random.default_rng(1)
    x, dout = rng.normal(size=shape), rng.normal(size=shape)
    grad = numerical_gradient(np.sin, x, dout)
    assert rel_error(grad, np.cos(x) * dout) < 1e-8, f"shape={shape}"


@pytest.mark.parametrize("n, d, k", [(1, 1, 1), (4, 3, 2), (5, 6, 3)])
def test_numerical_gradient_of_matrix_product(n, d, k):
    rng = np.random.default_rng(2)
    x, W, dout = rng.normal(size=(n, d)), rng.normal(size=(d, k)), rng.normal(size=(n, k))
    dW = numerical_gradient(lambda w: x @ w, W, dout)
    dx = numerical_gradient(lambda v: v @ W, x, dout)
    # linear, so only round-off (~1e-10 absolute) remains; small entries make it ~1e-8 relative
    assert rel_error(dW, x.T @ dout) < 1e-7, f"dW, n={n}, d={d}, k={k}"
    assert rel_error(dx, dout @ W.T) < 1e-7, f"dx, n={n}, d={d}, k={k}"


def test_numerical_gradient_of_a_scalar_valued_function():
    x = np.array([0.5, -1.0, 2.0])
    grad = numerical_gradient(lambda v: np.sum(v ** 3), x, 1.0)
    assert rel_error(grad, 3 * x ** 2) < 1e-8


def test_numerical_gradient_restores_x():
    x = np.random.default_rng(3).normal(size=(3, 4))
    before = x.copy()
    numerical_gradient(np.tanh, x, np.ones_like(x))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("bad_x", [[1.0, 2.0], np.array([1, 2])], ids=["list", "int-array"])
def test_numerical_gradient_needs_float_ndarray(bad_x):
    with pytest.raises(ValueError, match="^x must be a floating-point ndarray"):
        numerical_gradient(lambda v: v, bad_x, 1.0)


# ----------------------------------------------------------------- rel_error
@pytest.mark.parametrize("a", [np.zeros(3), np.array([1.0, -2.0, 3e5]), np.eye(3)])
def test_rel_error_of_identical_arrays_is_zero(a):
    assert rel_error(a, a.copy()) == 0.0


@pytest.mark.parametrize("a, b, expected", [
    (1.0, 3.0, 0.5),                           # |1-3| / (1+3)
    ([1.0, 10.0], [1.0, 11.0], 1 / 21),        # the largest elementwise error
    ([1.0], [-1.0], 1.0),                      # opposite signs: the worst case
    ([0.0], [1e-9], 1e-9 / 1e-8),              # the 1e-8 floor in the denominator
])
def test_rel_error_known_values(a, b, expected):
    assert rel_error(a, b) == pytest.approx(expected, rel=1e-12), f"a={a}, b={b}"


def test_rel_error_is_symmetric():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=10), rng.normal(size=10)
    assert rel_error(a, b) == rel_error(b, a)


@pytest.mark.parametrize("shape_a, shape_b", [((3,), (4,)), ((2, 3), (3, 2)), ((3,), (1, 3))])
def test_rel_error_shape_mismatch_raises(shape_a, shape_b):
    with pytest.raises(ValueError, match=r"^b must have the same shape as a, \("):
        rel_error(np.ones(shape_a), np.ones(shape_b))
