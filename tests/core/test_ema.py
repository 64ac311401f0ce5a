"""Tests of bnlib.ema against prefix means, the unrolled closed form and the conventions."""
import numpy as np
import pytest

from bnlib.ema import (CONVENTIONS, bias_correct, convert_momentum, effective_window, ema,
                       ema_update, ema_weights, running_mean)

ALPHAS = [0.01, 0.1, 0.5, 0.9, 1.0]


def stream(kind, n=10_000, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return 5.0 + 2.0 * rng.standard_normal(n)
    if kind == "integers":
        return rng.integers(-50, 50, size=n)
    if kind == "drift":
        return np.linspace(0.0, 100.0, n) + rng.standard_normal(n)
    if kind == "matrix":
        return rng.standard_normal((n, 3)) * np.array([1.0, 10.0, 0.1])
    raise AssertionError(kind)


def unrolled_ema(x, alpha, y0):
    """y_t = (1-a)^t y0 + sum_{k=1..t} a (1-a)^(t-k) x_k, as an explicit weighted sum."""
    x = np.asarray(x, dtype=np.float64)
    t_idx = np.arange(1, len(x) + 1)
    ages = t_idx[:, None] - t_idx[None, :]                 # t - k
    weights = np.where(ages >= 0, alpha * (1 - alpha) ** np.maximum(ages, 0), 0.0)
    start = (1 - alpha) ** t_idx
    return weights @ x + start.reshape((-1,) + (1,) * (x.ndim - 1)) * y0


# -------------------------------------------------------------- running mean
@pytest.mark.parametrize("kind", ["normal", "integers", "drift", "matrix"])
def test_running_mean_equals_prefix_mean_at_every_step(kind):
    x = stream(kind)
    y = running_mean(x)
    t = np.arange(1, len(x) + 1).reshape((-1,) + (1,) * (x.ndim - 1))
    prefix = np.cumsum(x, axis=0, dtype=np.float64) / t     # mean of x_1..x_t, for every t
    assert y.shape == prefix.shape, kind
    np.testing.assert_allclose(y, prefix, rtol=1e-9, atol=1e-9,
                               err_msg=f"running mean vs prefix mean, stream={kind}")


@pytest.mark.parametrize("t", [1, 2, 3, 999, 5000, 10_000])
def test_running_mean_at_step_t_is_np_mean_of_the_first_t_values(t):
    x = stream("normal")
    assert running_mean(x)[t - 1] == pytest.approx(np.mean(x[:t]), rel=1e-12), f"t={t}"


def test_running_mean_of_a_single_value_is_that_value():
    np.testing.assert_array_equal(running_mean([3.25]), [3.25])


# ----------------------------------------------------------------------- ema
@pytest.mark.parametrize("y0", [0.0, 3.5])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kind", ["normal", "drift", "matrix"])
def test_ema_matches_unrolled_closed_form(kind, alpha, y0):
    x = stream(kind, n=300, seed=1)
    np.testing.assert_allclose(ema(x, alpha, y0=y0), unrolled_ema(x, alpha, y0), rtol=1e-10,
                               atol=1e-10, err_msg=f"stream={kind}, alpha={alpha}, y0={y0}")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_ema_first_step_mixes_y0_and_first_value(alpha):
    x = stream("normal", n=5, seed=2)
    y = ema(x, alpha, y0=-7.0)
    assert y[0] == pytest.approx((1 - alpha) * -7.0 + alpha * x[0], rel=1e-14), f"alpha={alpha}"


def test_ema_with_alpha_one_is_the_latest_value():
    x = stream("normal", n=50, seed=2)
    np.testing.assert_array_equal(ema(x, 1.0, y0=-7.0), x)


def test_ema_with_vector_y0_starts_each_column_from_its_own_value():
    x = stream("matrix", n=40, seed=3)
    y0 = np.array([1.0, -2.0, 30.0])
    np.testing.assert_allclose(ema(x, 0.2, y0=y0), unrolled_ema(x, 0.2, y0), rtol=1e-10,
                               atol=1e-12)


# ------------------------------------------------------------------- weights
@pytest.mark.parametrize("t", [1, 2, 10, 200])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_ema_weights_sum_to_one_minus_decay(alpha, t):
    w = ema_weights(alpha, t)
    assert w.shape == (t,)
    np.testing.assert_allclose(np.sum(w), 1 - (1 - alpha) ** t, rtol=1e-12, atol=1e-15,
                               err_msg=f"alpha={alpha}, t={t}")


@pytest.mark.parametrize("t", [1, 5, 60])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_ema_weights_are_the_ema_of_impulses(alpha, t):
    """Column k of the identity is an impulse at step k+1; y_t of it is the weight of x_{k+1}."""
    impulses = np.eye(t)
    y_t = ema(impulses, alpha, y0=0.0)[-1]          # weight of x_1, ..., x_t
    np.testing.assert_allclose(ema_weights(alpha, t), y_t[::-1], rtol=1e-12, atol=1e-300,
                               err_msg=f"alpha={alpha}, t={t}")


# ------------------------------------------------------------ bias correction
@pytest.mark.parametrize("value", [1.0, -4.5, 1e3])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_bias_corrected_ema_of_a_constant_is_the_constant_from_step_one(alpha, value):
    x = np.full(100, value)
    raw = ema(x, alpha, y0=0.0)
    corrected = bias_correct(raw, alpha)
    np.testing.assert_allclose(corrected, x, rtol=1e-12, err_msg=f"alpha={alpha}")
    if alpha < 1.0:   # without the correction the first steps are pulled towards 0
        assert abs(raw[0]) < abs(value), f"alpha={alpha}: raw EMA shows no start-up bias"


def test_bias_correct_divides_each_step_by_one_minus_decay():
    y = np.arange(1.0, 9.0).reshape(4, 2)
    alpha = 0.3
    t = np.arange(1, 5)[:, None]
    np.testing.assert_allclose(bias_correct(y, alpha), y / (1 - 0.7 ** t), rtol=1e-14)


# -------------------------------------------------------------- window, update
@pytest.mark.parametrize("alpha", ALPHAS)
def test_effective_window_is_one_over_alpha(alpha):
    assert effective_window(alpha) == pytest.approx(1.0 / alpha, rel=1e-15)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 0.99])
def test_ema_update_weights_the_old_value_by_momentum(momentum):
    old, new = np.array([1.0, -2.0, 10.0]), np.array([3.0, 4.0, -10.0])
    np.testing.assert_allclose(ema_update(old, new, momentum),
                               momentum * old + (1 - momentum) * new, rtol=1e-15,
                               err_msg=f"momentum={momentum}")


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.99])
def test_ema_update_is_one_ema_step_with_alpha_one_minus_momentum(momentum):
    x = stream("normal", n=30, seed=4)
    y = 0.0
    for value in x:
        y = ema_update(y, value, momentum)
    assert y == pytest.approx(ema(x, 1 - momentum)[-1], rel=1e-12), f"momentum={momentum}"


# ---------------------------------------------------------------- conventions
@pytest.mark.parametrize("value", [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("source", sorted(CONVENTIONS))
@pytest.mark.parametrize("target", sorted(CONVENTIONS))
def test_convert_momentum_round_trips(value, source, target):
    there = convert_momentum(value, source=source, target=target)
    back = convert_momentum(there, source=target, target=source)
    assert back == pytest.approx(value, abs=1e-15), f"{source} -> {target} -> {source}"


@pytest.mark.parametrize("keras, pytorch", [(0.99, 0.01), (0.9, 0.1), (0.0, 1.0)])
def test_keras_and_pytorch_momentum_are_complements(keras, pytorch):
    assert convert_momentum(keras, source="keras", target="pytorch") == pytest.approx(pytorch)
    assert convert_momentum(pytorch, source="pytorch", target="keras") == pytest.approx(keras)


@pytest.mark.parametrize("value", [0.0, 0.1, 0.99])
def test_cs231n_momentum_is_keras_momentum(value):
    assert convert_momentum(value, source="cs231n", target="keras") == value
    assert convert_momentum(value, source="keras", target="cs231n") == value


@pytest.mark.parametrize("keras_momentum", [0.5, 0.9, 0.99])
def test_converted_momentum_gives_the_same_smoother(keras_momentum):
    """PyTorch's rule with the converted value reproduces the Keras rule step by step."""
    m_torch = convert_momentum(keras_momentum, source="keras", target="pytorch")
    old, batch = np.array([0.3, 2.0]), np.array([1.7, -1.0])
    keras_rule = keras_momentum * old + (1 - keras_momentum) * batch
    pytorch_rule = (1 - m_torch) * old + m_torch * batch
    np.testing.assert_allclose(pytorch_rule, keras_rule, rtol=1e-12)
    np.testing.assert_allclose(ema_update(old, batch, keras_momentum), pytorch_rule, rtol=1e-12)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.01, 2.0, np.nan])
@pytest.mark.parametrize("call", [
    lambda a: ema(np.ones(5), a),
    lambda a: ema_weights(a, 5),
    lambda a: bias_correct(np.ones(5), a),
    lambda a: effective_window(a),
], ids=["ema", "ema_weights", "bias_correct", "effective_window"])
def test_bad_alpha_raises(call, alpha):
    with pytest.raises(ValueError, match=r"^alpha .* must be in \(0, 1\]"):
        call(alpha)


@pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5])
def test_ema_update_bad_momentum_raises(momentum):
    with pytest.raises(ValueError, match=r"^momentum .* must be in \[0, 1\)"):
        ema_update(1.0, 2.0, momentum)


@pytest.mark.parametrize("t", [0, -3])
def test_ema_weights_bad_t_raises(t):
    with pytest.raises(ValueError, match="^t must be an integer >= 1"):
        ema_weights(0.1, t)


@pytest.mark.parametrize("source, target, bad", [
    ("tensorflow", "keras", "source"), ("Keras", "pytorch", "source"),
    ("keras", "torch", "target"), ("pytorch", "", "target"),
])
def test_convert_momentum_bad_convention_raises(source, target, bad):
    with pytest.raises(ValueError, match=rf"^{bad} must be one of"):
        convert_momentum(0.9, source=source, target=target)


@pytest.mark.parametrize("value", [-0.01, 1.5])
def test_convert_momentum_value_outside_unit_interval_raises(value):
    with pytest.raises(ValueError, match=r"^value must be a finite number in \[0, 1\] \(a momentum\)"):
        convert_momentum(value, source="keras", target="pytorch")


@pytest.mark.parametrize("call", [running_mean, lambda x: ema(x, 0.1)],
                         ids=["running_mean", "ema"])
def test_non_finite_stream_raises(call):
    with pytest.raises(ValueError, match="^x must contain only finite values"):
        call(np.array([1.0, np.nan, 2.0]))


def test_ema_y0_of_wrong_shape_raises():
    with pytest.raises(ValueError, match="y0"):
        ema(np.ones((5, 3)), 0.5, y0=np.zeros(2))


def test_from_bnlib_import_ema_gives_the_module():
    from bnlib import ema as ema_module
    import bnlib.ema
    assert ema_module is bnlib.ema
