"""bnlib.nn against trusted references: numerical gradients, direct formulas, bnlib.batchnorm."""
import numpy as np
import pytest

from bnlib import data, nn
from bnlib.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward
from bnlib.gradcheck import numerical_gradient, rel_error

NORMS = [(None, "before"), ("batch", "before"), ("batch", "after")]


@pytest.fixture(scope="module")
def split():
    return data.digits()


def _small_model(activation, norm, position, seed=3):
    """A 5-4-6-3 net with every parameter moved away from its (symmetric) initial value."""
    model = nn.MLP((5, 4, 6, 3), activation=activation, norm=norm, norm_position=position,
                   seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, p in zip(model.param_names(), model.params()):
        if name[0] in "bg":  # biases and gammas
            p[...] = rng.normal(1.0 if name.startswith("gamma") else 0.0, 0.5, p.shape)
        elif name.startswith("beta"):
            p[...] = rng.normal(0.0, 0.5, p.shape)
    return model


def _loss(model, x, y, training):
    return nn.softmax_cross_entropy(model.forward(x, training=training), y)


@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
@pytest.mark.parametrize("norm,position", NORMS)
@pytest.mark.parametrize("training", [True, False])
def test_mlp_gradients_match_numerical(activation, norm, position, training):
    model = _small_model(activation, norm, position)
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, (8, 5))
    y = rng.integers(0, 3, 8)
    if norm is not None:  # non-trivial moving statistics for the inference-mode check
        for layer in model.norms:
            layer.moving_mean = rng.normal(0.0, 0.5, layer.moving_mean.shape)
            layer.moving_variance = rng.uniform(0.5, 2.0, layer.moving_variance.shape)
    loss, dlogits = _loss(model, x, y, training)
    dx = model.backward(dlogits)
    saved = [(l.moving_mean.copy(), l.moving_variance.copy()) for l in model.norms if l]

    def f(_):
        return np.array(_loss(model, x, y, training)[0])

    for name, p, g in zip(model.param_names(), model.params(), model.grads()):
        assert g.shape == p.shape, name
        # atol for exact zeros (a dead ReLU unit), where a relative error is meaningless
        np.testing.assert_allclose(g, numerical_gradient(f, p, 1.0), rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    np.testing.assert_allclose(dx, numerical_gradient(f, x, 1.0), rtol=1e-6, atol=1e-9)
    if not training:  # inference mode must leave the moving statistics alone
        for layer, (mean, var) in zip([l for l in model.norms if l], saved):
            np.testing.assert_array_equal(layer.moving_mean, mean)
            np.testing.assert_array_equal(layer.moving_variance, var)


@pytest.mark.parametrize("norm,position", NORMS)
def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(norm, position):
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.0, 1.0, (8, 5)), rng.integers(0, 3, 8)
    grads = []
    for input_grad in (True, False):
        model = _small_model("tanh", norm, position)
        _, dlogits = _loss(model, x, y, True)
        dx = model.backward(dlogits, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads.append([g.copy() for g in model.grads()])
    for with_dx, without in zip(*grads):
        np.testing.assert_array_equal(without, with_dx)


@pytest.mark.parametrize("norm,position,names", [
    (None, "before", ["W1", "b1", "W2", "b2", "W3", "b3"]),
    ("batch", "before", ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]),
    ("batch", "after", ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                        "W3", "b3"]),
])
def test_bias_dropped_only_before_batch_norm(norm, position, names):
    model = nn.MLP((4, 3, 3, 2), norm=norm, norm_position=position)
    assert model.param_names() == names
    assert len(model.params()) == len(names)


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("training", [True, False])
def test_plugged_in_bnlib_batchnorm_gives_the_same_network(position, training):
    """norm=callable with the checked BatchNorm reproduces norm="batch" (FastBatchNorm)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(2.0, 3.0, (10, 5)), rng.integers(0, 3, 10)
    fast = nn.MLP((5, 7, 6, 3), norm="batch", norm_position=position, seed=1, momentum=0.9)
    ref = nn.MLP((5, 7, 6, 3), norm=lambda w: BatchNorm(w, momentum=0.9), norm_position=position,
                 seed=1)
    for model in (fast, ref):  # one training step first, so moving stats and params move
        loss, d = _loss(model, x, y, True)
        model.backward(d)
        nn.sgd_step(model, 0.5)
    out_fast, out_ref = fast.forward(x, training=training), ref.forward(x, training=training)
    np.testing.assert_allclose(out_fast, out_ref, rtol=1e-12, atol=1e-12)
    fast.backward(nn.softmax_cross_entropy(out_fast, y)[1])
    ref.backward(nn.softmax_cross_entropy(out_ref, y)[1])
    for a, b in zip(fast.grads(), ref.grads()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for lf, lr in zip(fast.norms, ref.norms):
        np.testing.assert_allclose(lf.moving_mean, lr.moving_mean, rtol=1e-12)
        np.testing.assert_allclose(lf.moving_variance, lr.moving_variance, rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_fast_batchnorm_matches_batchnorm_functions(training):
    rng = np.random.default_rng(2)
    x, dout = rng.normal(5.0, 2.0, (12, 4)), rng.normal(size=(12, 4))
    layer = nn.FastBatchNorm(4, momentum=0.8, eps=1e-3)
    layer.gamma, layer.beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    layer.moving_mean, layer.moving_variance = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    out, cache, mean, var = batchnorm_forward(x, layer.gamma, layer.beta, layer.moving_mean,
                                              layer.moving_variance, training=training,
                                              momentum=0.8, eps=1e-3)
    np.testing.assert_allclose(layer(x, training=training), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-12)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    np.testing.assert_allclose(layer.backward(dout), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.dgamma, dgamma, rtol=1e-12)
    np.testing.assert_allclose(layer.dbeta, dbeta, rtol=1e-12)


def test_softmax_cross_entropy_matches_direct_formula():
    rng = np.random.default_rng(4)
    logits, y = rng.normal(0.0, 2.0, (6, 4)), np.array([0, 3, 1, 1, 2, 0])
    loss, dlogits = nn.softmax_cross_entropy(logits, y)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(6), y])), rel=1e-12)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dlogits, (probs - onehot) / 6, rtol=1e-10, atol=1e-14)
    numeric = numerical_gradient(lambda z: np.array(nn.softmax_cross_entropy(z, y)[0]),
                                 logits.copy(), 1.0)
    assert rel_error(dlogits, numeric) < 1e-7


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    loss, dlogits = nn.softmax_cross_entropy(logits, np.array([0, 0]))
    assert loss == pytest.approx(1000.0)  # first row is right (0), second costs 2000
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-12)


@pytest.mark.parametrize("init_scale", [0.1, 1.0, 10.0])
def test_weight_init_scale(init_scale):
    model = nn.MLP((400, 300, 10), init_scale=init_scale, seed=0)
    assert np.std(model.weights[0]) == pytest.approx(init_scale / np.sqrt(400), rel=0.02)
    assert np.std(model.weights[1]) == pytest.approx(init_scale / np.sqrt(300), rel=0.05)
    assert not np.any(model.biases[0])


def test_forward_keeps_pre_activations_and_activations():
    model = nn.MLP((5, 4, 3, 2), activation="tanh", norm="batch", seed=0)
    x = np.random.default_rng(0).normal(size=(9, 5))
    model.forward(x, training=True)
    assert [z.shape for z in model.pre_activations] == [(9, 4), (9, 3)]
    z1 = model.norms[0](x @ model.weights[0], training=False)  # recompute in inference mode
    model.forward(x, training=False)
    np.testing.assert_allclose(model.pre_activations[0], z1)
    np.testing.assert_allclose(model.activations[0], np.tanh(z1))


def test_sgd_step_moves_each_parameter_against_its_gradient():
    model = _small_model("tanh", "batch", "before")
    rng = np.random.default_rng(1)
    model.backward(_loss(model, rng.normal(size=(6, 5)), rng.integers(0, 3, 6), True)[1])
    before = [p.copy() for p in model.params()]
    nn.sgd_step(model, 0.3)
    for p0, p, g in zip(before, model.params(), model.grads()):
        np.testing.assert_allclose(p, p0 - 0.3 * g)


def test_accuracy_is_the_argmax_rate_in_inference_mode(split):
    model = nn.MLP((64, 20, 10), norm="batch", seed=0)
    nn.train(model, split, steps=30, lr=0.1)
    mean = model.norms[0].moving_mean.copy()
    expected = np.mean(model.forward(split.x_test, training=False).argmax(1) == split.y_test)
    assert nn.accuracy(model, split.x_test, split.y_test) == pytest.approx(expected)
    np.testing.assert_array_equal(model.norms[0].moving_mean, mean)


def test_batch_indices_are_seeded_epoch_permutations():
    idx = nn.batch_indices(10, steps=7, batch_size=3, seed=5)
    assert idx.shape == (7, 3)
    flat = idx.ravel()
    for epoch in range(2):
        assert sorted(flat[10 * epoch:10 * (epoch + 1)]) == list(range(10))
    np.testing.assert_array_equal(idx, nn.batch_indices(10, steps=7, batch_size=3, seed=5))
    assert not np.array_equal(idx, nn.batch_indices(10, steps=7, batch_size=3, seed=6))


@pytest.mark.parametrize("activation,norm", [("sigmoid", "batch"), ("relu", None),
                                             ("tanh", "batch")])
def test_training_reduces_loss_on_digits(split, activation, norm):
    model = nn.MLP((64, 50, 10), activation=activation, norm=norm, seed=0)
    history = nn.train(model, split, steps=300, lr=0.1, eval_every=50)
    assert not history.diverged
    assert history.step.tolist() == list(range(1, 301))
    assert history.eval_step.tolist() == [0, 50, 100, 150, 200, 250, 300]
    assert history.loss[-30:].mean() < 0.3 * history.loss[:5].mean()
    assert history.test_accuracy[0] < 0.3 and history.test_accuracy[-1] > 0.9
    assert history.final_accuracy == history.test_accuracy[-1]


def test_training_is_reproducible_and_records(split):
    def record(model):
        model.forward(split.x_test[:50], training=False)
        z = model.pre_activations[-1][:, 0]
        return {"p50": np.percentile(z, 50), "mean": z.mean()}

    runs = [nn.train(nn.MLP((64, 30, 30, 10), norm="batch", seed=2), split, steps=40,
                     eval_every=15, record=record, seed=1) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    assert runs[0].eval_step.tolist() == [0, 15, 30, 40]
    assert set(runs[0].recorded) == {"p50", "mean"}
    assert runs[0].recorded["p50"].shape == (4,)
    other = nn.train(nn.MLP((64, 30, 30, 10), norm="batch", seed=2), split, steps=40, seed=2)
    assert not np.array_equal(runs[0].loss, other.loss)


@pytest.mark.parametrize("norm", [None, "batch"])
def test_divergence_stops_training(split, norm):
    model = nn.MLP((64, 50, 50, 10), activation="relu", norm=norm, init_scale=3.0, seed=0)
    history = nn.train(model, split, steps=200, lr=1e200)  # weights overflow
    assert history.diverged
    assert len(history.step) < 200 and len(history.loss) == len(history.step)
    assert history.final_accuracy == 0.0


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="activation"):
        nn.MLP((3, 2), activation="softplus")
    with pytest.raises(ValueError, match="norm_position"):
        nn.MLP((3, 2, 2), norm="batch", norm_position="middle")
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        nn.MLP((3, 2)).forward(np.zeros((4, 5)), training=False)


# ------------------------------------------------------------ the training layer
@pytest.mark.parametrize("eps", [1e-3, 1e-8, 1e-12])
@pytest.mark.parametrize("training", [True, False])
def test_training_layer_uses_the_eps_it_was_given(training, eps):
    """Variance 1e-10: eps = 1e-12, 1e-8 and 1e-3 give visibly different outputs."""
    rng = np.random.default_rng(8)
    x = 1e-5 * rng.normal(size=(30, 4))
    layer = nn.FastBatchNorm(4, eps=eps, momentum=0.5)
    layer.moving_mean, layer.moving_variance = x.mean(axis=0), 2.0 * x.var(axis=0)
    mean, var = (x.mean(axis=0), x.var(axis=0)) if training else (layer.moving_mean,
                                                                  layer.moving_variance)
    expected = (x - mean) / np.sqrt(var + eps)
    np.testing.assert_allclose(layer(x, training=training), expected, rtol=1e-10,
                               err_msg=f"eps={eps}")
    model = nn.MLP((3, 4, 2), norm="batch", eps=eps)
    assert model.norms[0].eps == eps


def test_training_layer_moving_statistics_follow_the_momentum_rule():
    rng = np.random.default_rng(9)
    layer = nn.FastBatchNorm(3, momentum=0.75, unbiased_moving_variance=True)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rng.normal(step, step + 1.0, (10, 3))
        layer(x, training=True)
        mean = 0.75 * mean + 0.25 * x.mean(axis=0)
        var = 0.75 * var + 0.25 * x.var(axis=0, ddof=1)
        np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-12, err_msg=f"step {step}")


def test_training_layer_is_for_two_dimensional_input_only():
    with pytest.raises(ValueError, match="axis=-1"):
        nn.FastBatchNorm((4, 3), axis=(1, 2))
    nn.FastBatchNorm(3, axis=1)  # the same as -1 for (N, D)


# --------------------------------------------------------------------- sigmoid
def test_sigmoid_is_the_logistic_function():
    z = np.linspace(-30.0, 30.0, 61)
    np.testing.assert_allclose(nn.sigmoid(z), 1.0 / (1.0 + np.exp(-z)), rtol=1e-14)
    np.testing.assert_allclose(nn.sigmoid(-z), 1.0 - nn.sigmoid(z), atol=1e-15)
    assert nn.sigmoid(0.0) == 0.5


def test_sigmoid_does_not_overflow(recwarn):
    out = nn.sigmoid(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(out, [0.0, 1.0])
    assert not recwarn.list


def test_sigmoid_network_uses_the_sigmoid():
    model = nn.MLP((3, 4, 2), activation="sigmoid", seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    model.forward(x, training=False)
    np.testing.assert_allclose(model.activations[0],
                               1.0 / (1.0 + np.exp(-(x @ model.weights[0]))), rtol=1e-14)


# ------------------------------------------------------------------- history
def _history():
    return nn.History(step=np.arange(1, 26), loss=np.ones(25),
                      eval_step=np.array([0, 10, 20, 25]),
                      test_accuracy=np.array([0.1, 0.5, 0.7, 0.8]))


@pytest.mark.parametrize("step, expected", [(0, 0.1), (1, 0.5), (10, 0.5), (11, 0.7),
                                            (20, 0.7), (25, 0.8), (26, 0.0)])
def test_accuracy_at_is_the_first_evaluation_at_or_after_the_step(step, expected):
    assert _history().accuracy_at(step) == expected


def test_final_accuracy_is_zero_after_divergence():
    history = _history()
    assert history.final_accuracy == 0.8
    history.diverged = True
    assert history.final_accuracy == 0.0


# ---------------------------------------------------------------- saved state
def _everything(model):
    """Every array training changes, written out without MLP.state."""
    out = [W.copy() for W in model.weights] + [b.copy() for b in model.biases if b is not None]
    for norm in model.norms:
        if norm is not None:
            out += [norm.gamma.copy(), norm.beta.copy()]
            if hasattr(norm, "moving_mean"):
                out += [norm.moving_mean.copy(), norm.moving_variance.copy()]
    return out


@pytest.mark.parametrize("norm, position", [(None, "before"), ("batch", "before"),
                                            ("batch", "after"), ("layer", "before")])
def test_load_state_puts_back_everything_training_changed(split, norm, position):
    from bnlib.layernorm import LayerNorm
    make_norm = LayerNorm if norm == "layer" else norm
    model = nn.MLP((64, 20, 20, 10), norm=make_norm, norm_position=position, seed=0)
    nn.train(model, split, steps=20, lr=0.1)
    before = _everything(model)
    logits = model.forward(split.x_test[:50], training=False)
    state = model.state()
    params = model.params()
    nn.train(model, split, steps=20, lr=0.5, seed=1)       # changes every array
    assert not any(np.array_equal(a, b) for a, b in zip(before, _everything(model))
                   if a.size > 1)
    model.load_state(state)
    for i, (a, b) in enumerate(zip(before, _everything(model))):
        np.testing.assert_array_equal(b, a, err_msg=f"array {i}")
    np.testing.assert_array_equal(model.forward(split.x_test[:50], training=False), logits)
    assert all(p is q for p, q in zip(params, model.params())), "parameters restored in place"


def test_state_is_a_copy_and_can_be_loaded_twice(split):
    model = nn.MLP((64, 20, 10), norm="batch", seed=0)
    state = model.state()
    saved = [a.copy() for a in state["weights"]] + [state["norms"][0]["moving_mean"].copy()]
    assert sorted(state["norms"][0]) == ["beta", "gamma", "moving_mean", "moving_variance"]
    for _ in range(2):
        nn.train(model, split, steps=10, lr=0.1)   # must not write into the saved arrays
        model.load_state(state)
        np.testing.assert_array_equal(state["weights"][0], saved[0])
        np.testing.assert_array_equal(state["norms"][0]["moving_mean"], saved[-1])
        np.testing.assert_array_equal(model.norms[0].moving_mean, saved[-1])
        model.norms[0].moving_mean += 1.0       # in place, on the model's own copy
        np.testing.assert_array_equal(state["norms"][0]["moving_mean"], saved[-1])


def test_load_state_of_another_architecture_raises():
    state = nn.MLP((4, 3, 2), norm="batch").state()
    with pytest.raises(ValueError, match="dense layers"):
        nn.MLP((4, 3, 3, 2), norm="batch").load_state(state)
    with pytest.raises(ValueError, match="shape"):
        nn.MLP((4, 5, 2), norm="batch").load_state(state)
    with pytest.raises(ValueError, match="normalized|bias"):
        nn.MLP((4, 3, 2)).load_state(state)


def test_restore_on_exit_restores_even_after_an_error(split):
    model = nn.MLP((64, 20, 10), norm="batch", seed=0)
    nn.train(model, split, steps=5)
    before = _everything(model)
    with pytest.raises(RuntimeError):
        with nn.restore_on_exit(model) as same:
            assert same is model
            nn.train(model, split, steps=5, lr=0.5)
            raise RuntimeError("measurement failed")
    for a, b in zip(before, _everything(model)):
        np.testing.assert_array_equal(b, a)


# ----- residual connections (optional, off by default) -----

@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
@pytest.mark.parametrize("norm,position", NORMS)
def test_residual_gradients_match_numerical(activation, norm, position):
    model = nn.MLP((5, 4, 4, 4, 3), activation=activation, norm=norm, norm_position=position,
                   seed=4, residual=True)
    assert model.skips == [False, True, True]  # 5 -> 4 has no identity shortcut
    rng = np.random.default_rng(8)
    for name, p in zip(model.param_names(), model.params()):
        if name.startswith(("gamma", "b")):
            p[...] = rng.normal(1.0 if name.startswith("gamma") else 0.0, 0.5, p.shape)
    x, y = rng.normal(0.0, 1.0, (7, 5)), rng.integers(0, 3, 7)
    loss, dlogits = _loss(model, x, y, True)
    dx = model.backward(dlogits)

    def f(_):
        return np.array(_loss(model, x, y, True)[0])

    for name, p, g in zip(model.param_names(), model.params(), model.grads()):
        np.testing.assert_allclose(g, numerical_gradient(f, p, 1.0), rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    np.testing.assert_allclose(dx, numerical_gradient(f, x, 1.0), rtol=1e-6, atol=1e-9)


def test_residual_forward_is_input_plus_block():
    """Written out independently: h1 = relu(BN(x W1)), h2 = h1 + relu(BN(h1 W2)), logits."""
    model = nn.MLP((3, 4, 4, 2), activation="relu", norm="batch", seed=2, residual=True)
    x = np.random.default_rng(1).normal(size=(6, 3))
    W1, W2, W3 = model.weights

    def bn(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-3)

    h1 = np.maximum(bn(x @ W1), 0)
    h2 = h1 + np.maximum(bn(h1 @ W2), 0)
    np.testing.assert_allclose(model.forward(x, training=True), h2 @ W3 + model.biases[2],
                               rtol=1e-12, atol=1e-12)


def test_residual_off_by_default_and_same_parameters():
    plain = nn.MLP((4, 4, 4, 2), norm="batch", seed=0)
    skip = nn.MLP((4, 4, 4, 2), norm="batch", seed=0, residual=True)
    assert plain.skips == [False, False] and skip.skips == [True, True]
    assert plain.param_names() == skip.param_names()
    for a, b in zip(plain.params(), skip.params()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="residual"):
        nn.MLP((4, 4, 2), residual="yes")


class _NoisyBatchNorm:
    """A norm layer with more state than gamma and beta: a batch norm inside and a random
    generator (multiplicative Gaussian noise in training), saved through its own state()."""

    def __init__(self, width, seed=0):
        self.bn = nn.FastBatchNorm(width, momentum=0.9)
        self.gamma, self.beta = self.bn.gamma, self.bn.beta
        self.rng = np.random.default_rng(seed)

    dgamma = property(lambda self: self.bn.dgamma)
    dbeta = property(lambda self: self.bn.dbeta)

    def __call__(self, x, *, training):
        out = self.bn(x, training=training)
        if training:
            self.noise = 1 + 0.3 * self.rng.standard_normal(out.shape)
            out = out * self.noise
        return out

    def backward(self, dout):
        return self.bn.backward(dout * self.noise)

    def state(self):
        return {"rng": self.rng.bit_generator.state, "gamma": self.gamma.copy(),
                "beta": self.beta.copy(), "moving_mean": self.bn.moving_mean.copy(),
                "moving_variance": self.bn.moving_variance.copy()}

    def load_state(self, state):
        if state["gamma"].shape != self.gamma.shape:
            raise ValueError("wrong width")
        self.rng.bit_generator.state = state["rng"]
        self.gamma[...], self.beta[...] = state["gamma"], state["beta"]
        self.bn.moving_mean = state["moving_mean"]
        self.bn.moving_variance = state["moving_variance"]


def test_a_layer_with_its_own_state_is_restored_exactly(split):
    """Training- and inference-mode outputs after load_state equal those of the saved model,
    noise included (its generator is part of the layer's state)."""
    model = nn.MLP((64, 20, 20, 10), norm=_NoisyBatchNorm, activation="relu", seed=0)
    nn.train(model, split, steps=20, lr=0.1)
    state = model.state()
    x = split.x_test[:40]
    inference = model.forward(x, training=False)
    expected = [model.forward(x, training=True) for _ in range(2)]
    expected_moving = [n.bn.moving_mean.copy() for n in model.norms]
    nn.train(model, split, steps=20, lr=0.5, seed=1)
    assert not np.allclose(model.forward(x, training=False), inference)
    for _ in range(2):      # the saved state stays reusable
        model.load_state(state)
        for out in expected:
            np.testing.assert_array_equal(model.forward(x, training=True), out)
        for n, m in zip(model.norms, expected_moving):
            np.testing.assert_array_equal(n.bn.moving_mean, m)
        model.load_state(state)
        np.testing.assert_array_equal(model.forward(x, training=False), inference)
    # in a fresh model of the same architecture too
    fresh = nn.MLP((64, 20, 20, 10), norm=_NoisyBatchNorm, activation="relu", seed=5)
    fresh.load_state(state)
    np.testing.assert_array_equal(fresh.forward(x, training=True), expected[0])


def test_a_layer_refusing_its_entry_leaves_the_model_as_it_was(split):
    model = nn.MLP((64, 20, 20, 10), norm=_NoisyBatchNorm, seed=0)
    other = nn.MLP((64, 20, 30, 10), norm=_NoisyBatchNorm, seed=1).state()
    state = model.state()
    state["norms"][1] = other["norms"][1]          # the second layer's entry has width 30
    nn.train(model, split, steps=5)
    before = _everything(model) + [n.bn.moving_mean.copy() for n in model.norms]
    with pytest.raises(ValueError, match="wrong width"):
        model.load_state(state)
    after = _everything(model) + [n.bn.moving_mean.copy() for n in model.norms]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(b, a)


def test_restore_on_exit_covers_a_layer_with_its_own_state(split):
    model = nn.MLP((64, 20, 10), norm=_NoisyBatchNorm, seed=0)
    x = split.x_test[:10]
    with nn.restore_on_exit(model):
        first = model.forward(x, training=True)
    np.testing.assert_array_equal(model.forward(x, training=True), first)
