"""Tests of bnlib.data: shapes, seeds, the digits split and the generators' ground truth."""
import functools
import math

import numpy as np
import pytest

from bnlib import data
from bnlib.data import SIGNAL_KINDS, covariate_shift, random_images, signal, true_function

# Loading and splitting the digits takes a moment: each setting is computed once.
digits = functools.lru_cache(maxsize=None)(data.digits)

N_DIGITS = 1797      # scikit-learn's digits: 1,797 images of 8x8 pixels


# -------------------------------------------------------------- random images
def test_random_images_shape_and_dtype():
    images = random_images()
    assert images.shape == (30, 32, 32, 1)
    assert images.dtype == np.float64
    assert np.all(np.isfinite(images))


@pytest.mark.parametrize("seed", [0, 678, 12345])
def test_random_images_are_reproducible(seed):
    np.testing.assert_array_equal(random_images(seed), random_images(seed), err_msg=f"seed={seed}")


@pytest.mark.parametrize("seed_a, seed_b", [(0, 1), (678, 679)])
def test_random_images_differ_between_seeds(seed_a, seed_b):
    assert not np.allclose(random_images(seed_a), random_images(seed_b))


@pytest.mark.parametrize("n, size", [(4, 8), (10, 16)])
def test_random_images_custom_size(n, size):
    assert random_images(n=n, size=size).shape == (n, size, size, 1)


def test_random_images_differ_in_brightness_and_contrast():
    images = random_images()
    means = images.mean(axis=(1, 2, 3))
    stds = images.std(axis=(1, 2, 3))
    # offsets are integers in [0, 60) and scales integers in [1, 5): 1024 pixels per image
    assert means.min() > -1.0 and means.max() < 60.0
    assert stds.min() > 0.8 and stds.max() < 4.3
    assert np.ptp(means) > 10.0 and np.ptp(stds) > 1.0


# -------------------------------------------------------------------- digits
@pytest.mark.parametrize("test_fraction", [0.25, 0.5, 0.1])
def test_digits_split_shapes(test_fraction):
    split = digits(test_fraction=test_fraction)
    n_test = math.ceil(test_fraction * N_DIGITS)
    case = f"test_fraction={test_fraction}"
    assert split.x_train.shape == (N_DIGITS - n_test, 64), case
    assert split.x_test.shape == (n_test, 64), case
    assert split.y_train.shape == (N_DIGITS - n_test,), case
    assert split.y_test.shape == (n_test,), case


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_digits_pixels_are_in_zero_one(dtype):
    split = digits(dtype=dtype)
    for name in ("x_train", "x_test"):
        x = getattr(split, name)
        assert x.dtype == dtype, f"{name}, dtype={np.dtype(dtype).name}"
        assert x.min() == 0.0 and x.max() == 1.0, name
        # pixels were 0..16, so every value is a multiple of 1/16
        np.testing.assert_array_equal(x * 16, np.round(x * 16), err_msg=name)


def test_digits_labels_are_the_ten_classes():
    split = digits()
    np.testing.assert_array_equal(np.unique(split.y_train), np.arange(10))
    np.testing.assert_array_equal(np.unique(split.y_test), np.arange(10))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("test_fraction", [0.25, 0.5])
def test_digits_split_is_stratified(seed, test_fraction):
    split = digits(seed=seed, test_fraction=test_fraction)
    per_class = np.bincount(np.concatenate([split.y_train, split.y_test]), minlength=10)
    in_test = np.bincount(split.y_test, minlength=10)
    # stratified: each class is split in the same proportion, up to rounding
    np.testing.assert_array_less(np.abs(in_test - test_fraction * per_class), 1.0 + 1e-9,
                                 err_msg=f"seed={seed}, test_fraction={test_fraction}")


def test_digits_split_keeps_every_image_once():
    from sklearn.datasets import load_digits

    split = digits()
    x_all = np.concatenate([split.x_train, split.x_test])
    rows = lambda pixels: sorted(map(bytes, pixels.astype(np.uint8)))   # 0..16 per pixel
    assert rows(x_all * 16) == rows(load_digits().data)


@pytest.mark.parametrize("seed", [0, 7])
def test_digits_split_is_reproducible(seed):
    a, b = data.digits(seed=seed), data.digits(seed=seed)     # two real calls, not cached
    for name, x, y in zip(a._fields, a, b):
        np.testing.assert_array_equal(x, y, err_msg=f"{name}, seed={seed}")


def test_digits_split_depends_on_seed():
    assert not np.array_equal(digits(seed=0).y_test, digits(seed=1).y_test)


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.2, 1.5])
def test_digits_bad_test_fraction_raises(test_fraction):
    with pytest.raises(ValueError, match=r"^test_fraction must be a finite number in \(0, 1\)"):
        data.digits(test_fraction=test_fraction)


# ------------------------------------------------------------------- signals
def expected_truth(kind, n):
    t = np.arange(n)
    if kind == "stationary":
        return np.full(n, 2.0)
    if kind == "step":
        return np.array([0.0 if i < n // 2 else 4.0 for i in range(n)])
    if kind == "drift":
        return np.linspace(0.0, 5.0, n)
    if kind == "sinusoid":
        return 3.0 * np.sin(2 * np.pi * t * 4 / n)
    raise AssertionError(kind)


@pytest.mark.parametrize("n", [10, 500, 1001])
@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signal_shape_and_truth(kind, n):
    x, truth = signal(kind, n=n, seed=3)
    case = f"kind={kind}, n={n}"
    assert x.shape == (n,) and truth.shape == (n,), case
    np.testing.assert_allclose(truth, expected_truth(kind, n), rtol=1e-12, atol=1e-12,
                               err_msg=case)


@pytest.mark.parametrize("noise", [0.5, 2.0])
@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signal_noise_is_zero_mean_with_the_given_std(kind, noise):
    n = 20_000
    x, truth = signal(kind, n=n, noise=noise, seed=4)
    residual = x - truth
    case = f"kind={kind}, noise={noise}"
    assert abs(residual.mean()) < 5 * noise / np.sqrt(n), case
    assert residual.std() == pytest.approx(noise, rel=0.03), case


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signal_without_noise_is_the_truth(kind):
    x, truth = signal(kind, n=100, noise=0.0)
    np.testing.assert_array_equal(x, truth, err_msg=kind)


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signal_is_reproducible_and_seeded(kind):
    np.testing.assert_array_equal(signal(kind, seed=5)[0], signal(kind, seed=5)[0])
    assert not np.allclose(signal(kind, seed=5)[0], signal(kind, seed=6)[0]), kind


@pytest.mark.parametrize("kind", ["", "Step", "ramp", "sine"])
def test_signal_bad_kind_raises(kind):
    with pytest.raises(ValueError, match="^kind must be one of"):
        signal(kind)


@pytest.mark.parametrize("n", [0, -5])
def test_signal_bad_length_raises(n):
    with pytest.raises(ValueError, match="^n must be an integer >= 1"):
        signal("stationary", n=n)


# ------------------------------------------------------------ covariate shift
@pytest.mark.parametrize("shift", [0.0, 1.5, 3.0])
def test_covariate_shift_shapes(shift):
    d = covariate_shift(shift, n_source=123, n_target=45)
    assert d.x_source.shape == d.y_source.shape == (123,)
    assert d.x_target.shape == d.y_target.shape == (45,)


@pytest.mark.parametrize("noise", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("shift", [0.0, 1.5, 3.0])
def test_covariate_shift_has_the_same_conditional_for_source_and_target(shift, noise):
    n = 20_000
    d = covariate_shift(shift, n_source=n, n_target=n, noise=noise, seed=1)
    for name, x, y in (("source", d.x_source, d.y_source), ("target", d.x_target, d.y_target)):
        residual = y - true_function(x)
        case = f"{name}, shift={shift}, noise={noise}"
        assert abs(residual.mean()) < 5 * noise / np.sqrt(n), case
        assert residual.std() == pytest.approx(noise, rel=0.03), case


def test_true_function_formula():
    x = np.array([-1.0, 0.0, 0.3, 2.0])
    np.testing.assert_allclose(true_function(x), np.sin(2 * x) + x / 2, rtol=1e-15)


@pytest.mark.parametrize("shift", [0.0, 1.5, 3.0])
def test_covariate_shift_inputs_follow_their_densities(shift):
    n = 20_000
    d = covariate_shift(shift, n_source=n, n_target=n, seed=2)
    grid = np.linspace(-10.0, 15.0, 20_001)
    for name, x, pdf in (("source", d.x_source, d.source_pdf),
                         ("target", d.x_target, d.target_pdf)):
        density = pdf(grid)
        case = f"{name}, shift={shift}"
        assert np.all(density >= 0), case
        assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6), case
        # the samples have the mean and variance of the density they come with
        mean = np.trapezoid(grid * density, grid)
        var = np.trapezoid((grid - mean) ** 2 * density, grid)
        assert x.mean() == pytest.approx(mean, abs=5 * np.sqrt(var / n)), case
        assert x.var() == pytest.approx(var, rel=0.05), case


@pytest.mark.parametrize("shift", [0.5, 1.5, 3.0])
def test_covariate_shift_moves_the_target_input(shift):
    d = covariate_shift(shift, n_source=5000, n_target=5000, seed=3)
    assert d.x_target.mean() - d.x_source.mean() == pytest.approx(shift, abs=0.05)


def test_covariate_shift_is_reproducible():
    a, b = covariate_shift(seed=4), covariate_shift(seed=4)
    for name in ("x_source", "y_source", "x_target", "y_target"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert not np.allclose(a.x_source, covariate_shift(seed=5).x_source)
