"""bnlib.distributed: combining per-replica statistics, and ghost batch norm.

References are independent of the code under test: NumPy's mean and var on the
concatenated batch, a plain loop over ghost batches with the formula written
out, and centred-difference gradients in float64.
"""
import numpy as np
import pytest

from bnlib import distributed as dist
from bnlib.gradcheck import numerical_gradient, rel_error


def _replica_batches(sizes, d=3, seed=0, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    # each replica with its own centre, so the between-replica term matters
    return [offset + scale * (rng.normal(size=(n, d)) + rng.normal(0, 2, size=d))
            for n in sizes]


# ---------------------------------------------------------------- combining moments

@pytest.mark.parametrize("sizes", [(8, 8), (4, 4, 4, 4), (3, 9, 1, 5), (16,)])
def test_combine_moments_equals_the_moments_of_the_concatenated_batch(sizes):
    parts = _replica_batches(sizes)
    local = [dist.local_moments(p) for p in parts]
    combined = dist.combine_moments([m.count for m in local], [m.mean for m in local],
                                    [m.variance for m in local])
    whole = np.concatenate(parts)
    assert combined.count == len(whole)
    np.testing.assert_allclose(combined.mean, whole.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(combined.variance, whole.var(axis=0), rtol=1e-12, atol=1e-12)


def test_combine_moments_keeps_the_between_replica_term():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(8, 3)), 3.0 + rng.normal(size=(8, 3))]   # centres 0 and 3
    local = [dist.local_moments(p) for p in parts]
    averaged = np.mean([m.variance for m in local], axis=0)
    combined = dist.combine_moments([8, 8], [m.mean for m in local],
                                    [m.variance for m in local]).variance
    between = np.var([m.mean for m in local], axis=0)       # (mu_0 - mu_1)**2 / 4
    np.testing.assert_allclose(combined, averaged + between, rtol=1e-12)
    assert np.all(between > 1.0)


def test_combine_moments_for_images_per_channel():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=(8, 4, 4, 2))
    local = [dist.local_moments(p, axis=-1) for p in dist.split_replicas(x, 4)]
    assert local[0].count == 2 * 4 * 4
    combined = dist.combine_moments([m.count for m in local], [m.mean for m in local],
                                    [m.variance for m in local])
    np.testing.assert_allclose(combined.variance, x.var(axis=(0, 1, 2)), rtol=1e-12)


def test_split_replicas_gives_consecutive_equal_slices():
    x = np.arange(24).reshape(12, 2)
    parts = dist.split_replicas(x, 3)
    assert [p.tolist() for p in parts] == [x[0:4].tolist(), x[4:8].tolist(), x[8:12].tolist()]


@pytest.mark.parametrize("bad, match", [
    (dict(counts=[4, 0], means=np.zeros((2, 3)), variances=np.ones((2, 3))), "counts"),
    (dict(counts=[4, 2.5], means=np.zeros((2, 3)), variances=np.ones((2, 3))), "counts"),
    (dict(counts=[4, 4], means=np.zeros((3, 3)), variances=np.ones((3, 3))), "means"),
    (dict(counts=[4, 4], means=np.zeros((2, 3)), variances=np.ones((2, 2))), "variances"),
    (dict(counts=[4, 4], means=np.zeros((2, 3)), variances=-np.ones((2, 3))), "variances"),
    (dict(counts=[4, 4], means=np.full((2, 3), np.nan), variances=np.ones((2, 3))), "means"),
])
def test_combine_moments_names_the_bad_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        dist.combine_moments(**bad)


def test_split_replicas_needs_a_divisor():
    with pytest.raises(ValueError, match="replicas"):
        dist.split_replicas(np.zeros((10, 2)), 4)
    with pytest.raises(ValueError, match="replicas"):
        dist.split_replicas(np.zeros((10, 2)), 0)


def test_sums_form_is_exact_in_float64_for_moderate_data():
    x = np.concatenate(_replica_batches((8, 8)))
    mean, var = dist.moments_from_sums(len(x), x.sum(axis=0), (x * x).sum(axis=0))
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-10)


@pytest.mark.parametrize("ratio", [1e3, 3e3, 1e4])
def test_sums_form_loses_the_variance_in_float32_when_the_mean_dominates(ratio):
    # data with mean/std = ratio, in float32, as Keras's synchronized batch norm sums it
    rng = np.random.default_rng(0)
    x = (ratio + rng.standard_normal((64, 4))).astype(np.float32)
    true_var = x.astype(np.float64).var(axis=0)
    _, naive = dist.moments_from_sums(64, x.sum(axis=0), (x * x).sum(axis=0))
    assert naive.dtype == np.float32
    naive_err = np.max(np.abs(naive - true_var) / true_var)
    local = [dist.local_moments(p) for p in dist.split_replicas(x, 4)]
    chan = dist.combine_moments([m.count for m in local], [m.mean for m in local],
                                [m.variance for m in local]).variance
    assert chan.dtype == np.float32
    chan_err = np.max(np.abs(chan - true_var) / true_var)
    # the law: the sums form errs by about 6e-8 * ratio**2 (0.06 at 1e3, everything at 1e4);
    # Chan's formula only by about 6e-8 * ratio (the means are rounded near 1e4)
    assert naive_err > 0.1 * 6e-8 * ratio ** 2
    assert chan_err < 10 * 6e-8 * ratio


def test_shifted_sums_repair_the_sums_form_in_float32():
    rng = np.random.default_rng(1)
    x = (1e4 + rng.standard_normal((64, 4))).astype(np.float32)
    true_mean, true_var = x.astype(np.float64).mean(axis=0), x.astype(np.float64).var(axis=0)
    shift = x[0]                                   # one example, broadcast to every replica
    sums = [dist.shifted_sums(p, shift) for p in dist.split_replicas(x, 4)]
    count = sum(s[0] for s in sums)
    total = np.sum([s[1] for s in sums], axis=0)
    total_sq = np.sum([s[2] for s in sums], axis=0)
    mean, var = dist.moments_from_shifted_sums(count, total, total_sq, shift)
    assert np.max(np.abs(var - true_var) / true_var) < 1e-4
    assert np.max(np.abs(mean - true_mean)) < 2e-3     # half a float32 step at 1e4 is 5e-4


# ---------------------------------------------------------------- ghost batch norm

def _ghost_reference(x, gamma, beta, ghost_size, eps):
    """Each block of ghost_size rows normalized alone, the formula written out."""
    out = np.empty_like(x)
    for start in range(0, len(x), ghost_size):
        block = x[start:start + ghost_size]
        mu = block.sum(axis=0) / len(block)
        var = ((block - mu) ** 2).sum(axis=0) / len(block)
        out[start:start + ghost_size] = gamma * (block - mu) / np.sqrt(var + eps) + beta
    return out


@pytest.mark.parametrize("n, ghost_size, eps", [(12, 3, 1e-3), (16, 4, 1e-5), (8, 8, 1e-2),
                                                (10, 2, 1e-3)])
def test_ghost_forward_normalizes_each_ghost_batch_alone(n, ghost_size, eps):
    rng = np.random.default_rng(n)
    x = rng.normal(3.0, 2.0, size=(n, 5))
    gamma, beta = rng.uniform(0.5, 2.0, 5), rng.normal(size=5)
    out, _, mm, mv = dist.ghost_batchnorm_forward(x, gamma, beta, np.zeros(5), np.ones(5),
                                                  ghost_size=ghost_size, training=True,
                                                  momentum=0.8, eps=eps)
    np.testing.assert_allclose(out, _ghost_reference(x, gamma, beta, ghost_size, eps),
                               rtol=1e-10, atol=1e-12)
    ghosts = x.reshape(n // ghost_size, ghost_size, 5)
    np.testing.assert_allclose(mm, 0.2 * ghosts.mean(axis=1).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mv, 0.8 + 0.2 * ghosts.var(axis=1).mean(axis=0), rtol=1e-12)


def test_ghost_forward_with_one_ghost_is_plain_batch_norm():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 3))
    out, *_ = dist.ghost_batchnorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3),
                                           ghost_size=8, training=True)
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-10)


def test_ghost_forward_per_channel_images():
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, size=(6, 3, 3, 2))
    out, *_ = dist.ghost_batchnorm_forward(x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2),
                                           ghost_size=2, training=True, axis=-1)
    for g in range(3):
        block = x[2 * g:2 * g + 2]
        mu, var = block.mean(axis=(0, 1, 2)), block.var(axis=(0, 1, 2))
        np.testing.assert_allclose(out[2 * g:2 * g + 2], (block - mu) / np.sqrt(var + 1e-3),
                                   rtol=1e-10, atol=1e-12)


def test_ghost_inference_uses_the_moving_statistics():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 3))
    mm, mv = rng.normal(size=3), rng.uniform(0.5, 2.0, 3)
    out, _, mm2, mv2 = dist.ghost_batchnorm_forward(x, np.ones(3), np.zeros(3), mm, mv,
                                                    ghost_size=2, training=False)
    np.testing.assert_allclose(out, (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-12)
    assert np.array_equal(mm2, mm) and np.array_equal(mv2, mv)


@pytest.mark.parametrize("shape, ghost_size, axis", [((12, 4), 3, -1), ((8, 2, 2, 3), 2, -1),
                                                     ((6, 5), 6, -1), ((8, 2, 3), 4, (1, 2))])
def test_ghost_backward_matches_numerical_gradients(shape, ghost_size, axis):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(2.0, 1.5, size=shape)
    kept = tuple(shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    gamma, beta = rng.uniform(0.5, 2.0, kept), rng.normal(size=kept)
    dout = rng.normal(size=shape)

    def forward(x_, gamma_=gamma, beta_=beta):
        return dist.ghost_batchnorm_forward(x_, gamma_, beta_, np.zeros(kept), np.ones(kept),
                                            ghost_size=ghost_size, training=True, axis=axis)[0]

    _, cache, _, _ = dist.ghost_batchnorm_forward(x, gamma, beta, np.zeros(kept), np.ones(kept),
                                                  ghost_size=ghost_size, training=True,
                                                  axis=axis)
    dx, dgamma, dbeta = dist.ghost_batchnorm_backward(dout, cache)
    assert rel_error(dx, numerical_gradient(forward, x, dout)) < 1e-7
    assert rel_error(dgamma, numerical_gradient(lambda g: forward(x, g), gamma.copy(), dout)) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda b: forward(x, gamma, b), beta.copy(),
                                               dout)) < 1e-7


def test_ghost_gradient_couples_only_examples_of_the_same_ghost_batch():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 3))
    _, cache, _, _ = dist.ghost_batchnorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3),
                                                  np.ones(3), ghost_size=4, training=True)
    dout = np.zeros_like(x)
    dout[0] = 1.0                                   # a loss on example 0 only
    dx, _, _ = dist.ghost_batchnorm_backward(dout, cache)
    assert np.all(dx[4:] == 0.0) and np.any(dx[1:4] != 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ghost_size=5), "ghost_size"), (dict(ghost_size=0), "ghost_size"),
    (dict(ghost_size=1), "ghost_size"), (dict(ghost_size=2.0), "ghost_size"),
    (dict(ghost_size=2, eps=0.0), "eps"), (dict(ghost_size=2, momentum=1.0), "momentum"),
    (dict(ghost_size=2, axis=0), "axis"),
])
def test_ghost_forward_names_the_bad_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dist.ghost_batchnorm_forward(np.zeros((8, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                     np.ones(3), training=True, **kwargs)


def test_ghost_forward_names_a_bad_gamma_and_backward_a_bad_dout():
    with pytest.raises(ValueError, match="gamma"):
        dist.ghost_batchnorm_forward(np.zeros((8, 3)), np.ones(2), np.zeros(3), np.zeros(3),
                                     np.ones(3), ghost_size=4, training=True)
    _, cache, _, _ = dist.ghost_batchnorm_forward(np.arange(24.0).reshape(8, 3), np.ones(3),
                                                  np.zeros(3), np.zeros(3), np.ones(3),
                                                  ghost_size=4, training=True)
    with pytest.raises(ValueError, match="dout"):
        dist.ghost_batchnorm_backward(np.zeros((4, 3)), cache)


def test_ghost_layer_trains_in_an_mlp_and_equals_the_functions():
    from bnlib import nn

    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(16, 6)), rng.integers(0, 3, 16)
    net = nn.MLP((6, 8, 3), activation="relu",
                 norm=lambda w: dist.GhostBatchNorm(w, 4, momentum=0.9), seed=0)
    layer = net.norms[0]
    logits = net.forward(x, training=True)
    z = x @ net.weights[0]
    expected, *_ = dist.ghost_batchnorm_forward(z, np.ones(8), np.zeros(8), np.zeros(8),
                                                np.ones(8), ghost_size=4, training=True,
                                                momentum=0.9)
    np.testing.assert_allclose(net.pre_activations[0], expected, rtol=1e-12)
    _, dlogits = nn.softmax_cross_entropy(logits, y)
    net.backward(dlogits)
    assert layer.dgamma.shape == (8,) and np.isfinite(layer.dgamma).all()


def test_importing_bnlib_and_lesson_10s_numpy_side_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, bnlib, bnlib.distributed, bnlib.lessons.lesson10.explore, "
            "bnlib.lessons.lesson10.exercises; print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
