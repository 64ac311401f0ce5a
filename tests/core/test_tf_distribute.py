"""bnlib.tf_distribute: Keras batch norm under MirroredStrategy over logical CPUs, against bnlib.

The logical devices are configured when this module is imported, i.e. while
pytest collects, before any test runs and so before TensorFlow initializes
its devices (importing TensorFlow does not). The reference is bnlib's batch
norm (tested against closed forms and numerical gradients elsewhere) on each
replica's slice or on the global batch.
"""
import numpy as np
import pytest

from bnlib import batchnorm, tf_distribute

DEVICES = tf_distribute.configure_cpu_devices(4)
TOL = dict(rtol=1e-5, atol=1e-5)   # float32 round-off


def _batch(n=16, d=3, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    return (offset + rng.normal(size=(n, d)) * np.linspace(0.5, 2.0, d)
            + np.linspace(-1.0, 2.0, d)).astype(np.float32)


def _bn(x, gamma, beta, mean, var, momentum=0.99):
    return batchnorm.batchnorm_forward(np.asarray(x, np.float64), gamma, beta, mean, var,
                                       training=True, momentum=momentum)


def test_configure_again_is_harmless_and_more_devices_are_refused():
    assert len(DEVICES) >= 4
    assert tf_distribute.configure_cpu_devices(2) == DEVICES
    tf_distribute.tf.constant(1.0)                # devices are initialized by now
    with pytest.raises(RuntimeError, match="restart the kernel"):
        tf_distribute.configure_cpu_devices(len(DEVICES) + 1)


def test_mirrored_strategy_checks_the_number_of_replicas():
    assert tf_distribute.mirrored_strategy(4).num_replicas_in_sync == 4
    with pytest.raises(ValueError, match="replicas"):
        tf_distribute.mirrored_strategy(len(DEVICES) + 1)
    with pytest.raises(ValueError, match="replicas"):
        tf_distribute.mirrored_strategy(0)


def test_distribute_rows_hands_out_consecutive_slices():
    strategy = tf_distribute.mirrored_strategy(4)
    a = np.arange(24, dtype=np.float32).reshape(8, 3)
    parts = tf_distribute.local_values(strategy, tf_distribute.distribute_rows(strategy, a))
    np.testing.assert_array_equal(parts, a.reshape(4, 2, 3))
    with pytest.raises(ValueError, match="replicas"):
        tf_distribute.distribute_rows(strategy, np.zeros((6, 2)))


@pytest.mark.parametrize("replicas", [2, 4])
def test_per_replica_output_is_batch_norm_of_each_slice(replicas):
    x = _batch()
    rng = np.random.default_rng(1)
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    r = tf_distribute.run_batchnorm(x, replicas, synchronized=False, gamma=gamma, beta=beta,
                                    eps=1e-3)
    size = len(x) // replicas
    expected = np.concatenate([_bn(x[k * size:(k + 1) * size], gamma, beta, np.zeros(3),
                                   np.ones(3))[0] for k in range(replicas)])
    np.testing.assert_allclose(r["out"], expected, **TOL)
    whole = _bn(x, gamma, beta, np.zeros(3), np.ones(3))[0]
    assert np.abs(r["out"] - whole).max() > 0.1


def test_per_replica_copies_drift_apart_and_replica_0s_copy_is_what_is_read_and_saved():
    rng = np.random.default_rng(2)
    batches = (rng.normal(size=(3, 8, 2)) + [1.0, -1.0]).astype(np.float32)
    r = tf_distribute.run_batchnorm(batches, 2, synchronized=False, momentum=0.5)
    for k in range(2):
        mean, var = np.zeros(2), np.ones(2)
        for x in batches.astype(np.float64):
            _, _, mean, var = _bn(x[4 * k:4 * k + 4], np.ones(2), np.zeros(2), mean, var, 0.5)
        np.testing.assert_allclose(r["moving_mean"][k], mean, **TOL)
        np.testing.assert_allclose(r["moving_variance"][k], var, **TOL)
    assert np.abs(r["moving_mean"][0] - r["moving_mean"][1]).max() > 1e-3
    np.testing.assert_array_equal(r["read_mean"], r["moving_mean"][0])
    np.testing.assert_array_equal(r["read_variance"], r["moving_variance"][0])
    np.testing.assert_array_equal(r["saved_mean"], r["moving_mean"][0])


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_synchronized_is_batch_norm_of_the_global_batch(replicas):
    x = _batch(seed=3)
    rng = np.random.default_rng(4)
    gamma, beta = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    dout = rng.normal(size=x.shape).astype(np.float32)
    r = tf_distribute.run_batchnorm(x, replicas, synchronized=True, gamma=gamma, beta=beta,
                                    momentum=0.9, dout=dout)
    out, cache, mean, var = _bn(x, gamma, beta, np.zeros(3), np.ones(3), 0.9)
    dx, dgamma, dbeta = batchnorm.batchnorm_backward(dout.astype(np.float64), cache)
    np.testing.assert_allclose(r["out"], out, **TOL)
    np.testing.assert_allclose(r["dx"], dx, **TOL)
    np.testing.assert_allclose(r["dgamma"].sum(axis=0), dgamma, **TOL)
    np.testing.assert_allclose(r["dbeta"].sum(axis=0), dbeta, **TOL)
    np.testing.assert_allclose(r["moving_mean"], np.tile(mean, (replicas, 1)), **TOL)
    np.testing.assert_allclose(r["moving_variance"], np.tile(var, (replicas, 1)), **TOL)


@pytest.mark.parametrize("synchronized, expected", [(False, 0), (True, 5)])
def test_one_layers_step_all_reduces_five_tensors_when_synchronized(synchronized, expected):
    # 3 in the forward pass (count, sum, sum of squares), 2 in the backward pass
    r = tf_distribute.run_batchnorm(_batch(), 4, synchronized=synchronized,
                                    dout=np.ones((16, 3), np.float32), count_all_reduces=True)
    assert r["all_reduced"] == expected


def test_keras_synchronized_variance_cancels_in_float32_where_one_replica_does_not():
    rng = np.random.default_rng(5)
    x = (1e4 + rng.standard_normal((64, 4))).astype(np.float32)   # mean/std = 1e4
    true = x.astype(np.float64).var(axis=0)
    sync = tf_distribute.run_batchnorm(x, 2, synchronized=True, momentum=0.0)
    single = tf_distribute.run_batchnorm(x, 1, synchronized=False, momentum=0.0)
    assert np.all(np.abs(sync["read_variance"] - true) / true > 0.5)
    assert np.all(np.abs(single["read_variance"] - true) / true < 1e-4)


def test_run_batchnorm_is_deterministic():
    x = _batch(seed=6)
    first = tf_distribute.run_batchnorm(x, 4, synchronized=True, dout=x)
    second = tf_distribute.run_batchnorm(x, 4, synchronized=True, dout=x)
    for name in ("out", "dx", "dgamma", "moving_variance"):
        np.testing.assert_array_equal(first[name], second[name])


def test_run_batchnorm_checks_its_batches():
    with pytest.raises(ValueError, match="batches"):
        tf_distribute.run_batchnorm(np.zeros(8, np.float32), 2, synchronized=False)
    with pytest.raises(ValueError, match="replicas"):
        tf_distribute.run_batchnorm(np.zeros((6, 2), np.float32), 4, synchronized=False)
