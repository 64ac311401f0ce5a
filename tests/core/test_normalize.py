"""Tests of bnlib.normalize against NumPy reductions and on the worksheet's images."""
import numpy as np
import pytest

from bnlib.data import random_images
from bnlib.normalize import apply_min_max, apply_standardize, min_max_scale, standardize

# (data shape, axis): the axes the statistics are taken over
AXES = [
    pytest.param((20, 5), 0, id="ND-axis0"),
    pytest.param((20, 5), 1, id="ND-axis1"),
    pytest.param((6, 4, 5, 3), 0, id="NHWC-axis0"),
    pytest.param((6, 4, 5, 3), (0,), id="NHWC-axis(0,)"),
    pytest.param((6, 4, 5, 3), (1, 2), id="NHWC-axis12"),
    pytest.param((6, 4, 5, 3), (0, 1, 2), id="NHWC-axis012"),
    pytest.param((6, 4, 5, 3), (1, 2, 3), id="NHWC-per-image"),
    pytest.param((6, 4, 5, 3), -1, id="NHWC-axis-1"),
]


def data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return 3.0 + 10.0 * rng.standard_normal(shape)


def kept_shape(shape, axis):
    axes = (axis,) if isinstance(axis, int) else axis
    axes = {a % len(shape) for a in axes}
    return tuple(1 if a in axes else s for a, s in enumerate(shape))


# ------------------------------------------------------------------- min-max
@pytest.mark.parametrize("shape, axis", AXES)
def test_min_max_maps_each_position_onto_zero_one(shape, axis):
    x = data(shape)
    scaled, stats = min_max_scale(x, axis=axis)
    case = f"shape={shape}, axis={axis}"
    assert scaled.shape == x.shape, case
    np.testing.assert_allclose(scaled.min(axis=axis), 0.0, atol=1e-15, err_msg=f"min, {case}")
    np.testing.assert_allclose(scaled.max(axis=axis), 1.0, rtol=1e-15, err_msg=f"max, {case}")
    np.testing.assert_allclose(scaled, (x - x.min(axis=axis, keepdims=True))
                               / np.ptp(x, axis=axis, keepdims=True), rtol=1e-13,
                               err_msg=f"formula, {case}")


@pytest.mark.parametrize("shape, axis", AXES)
def test_min_max_stats_reproduce_the_transform_on_new_data(shape, axis):
    x, x_new = data(shape, seed=1), data(shape, seed=2)
    scaled, stats = min_max_scale(x, axis=axis)
    case = f"shape={shape}, axis={axis}"
    assert stats.minimum.shape == kept_shape(shape, axis), case
    assert stats.maximum.shape == kept_shape(shape, axis), case
    np.testing.assert_array_equal(apply_min_max(x, stats), scaled, err_msg=case)
    expected = ((x_new - x.min(axis=axis, keepdims=True))
                / (x.max(axis=axis, keepdims=True) - x.min(axis=axis, keepdims=True)))
    np.testing.assert_allclose(apply_min_max(x_new, stats), expected, rtol=1e-13, err_msg=case)


# ------------------------------------------------------------ standardization
@pytest.mark.parametrize("shape, axis", AXES)
def test_standardize_gives_mean_zero_std_one_per_position(shape, axis):
    x = data(shape)
    z, stats = standardize(x, axis=axis)
    case = f"shape={shape}, axis={axis}"
    assert z.shape == x.shape, case
    np.testing.assert_allclose(z.mean(axis=axis), 0.0, atol=1e-13, err_msg=f"mean, {case}")
    np.testing.assert_allclose(z.std(axis=axis), 1.0, rtol=1e-13, err_msg=f"std, {case}")


@pytest.mark.parametrize("shape, axis", AXES)
def test_standardize_stats_are_population_mean_and_std(shape, axis):
    x, x_new = data(shape, seed=3), data(shape, seed=4)
    z, stats = standardize(x, axis=axis)
    case = f"shape={shape}, axis={axis}"
    np.testing.assert_allclose(stats.mean, x.mean(axis=axis, keepdims=True), rtol=1e-13,
                               err_msg=case)
    np.testing.assert_allclose(stats.std, x.std(axis=axis, ddof=0, keepdims=True), rtol=1e-13,
                               err_msg=case)
    np.testing.assert_array_equal(apply_standardize(x, stats), z, err_msg=case)
    expected = (x_new - x.mean(axis=axis, keepdims=True)) / x.std(axis=axis, keepdims=True)
    np.testing.assert_allclose(apply_standardize(x_new, stats), expected, rtol=1e-12,
                               atol=1e-13, err_msg=case)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("transform, pattern", [
    (min_max_scale, "^x must vary along axis 0 .*; got 1 of 5 positions with zero range"),
    (standardize, "^x must vary along axis 0 .*; got 1 of 5 positions with zero standard dev"),
])
def test_constant_feature_raises(transform, pattern):
    x = data((10, 5))
    x[:, 2] = 4.0
    with pytest.raises(ValueError, match=pattern):
        transform(x, axis=0)


@pytest.mark.parametrize("transform", [min_max_scale, standardize])
def test_non_finite_data_raises(transform):
    x = data((10, 5))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="^x must contain only finite values"):
        transform(x)


@pytest.mark.parametrize("transform, expected", [
    (min_max_scale, [[0.0, 0.5], [1.0, 0.0], [0.5, 1.0]]),            # (x - min) / range
    (standardize, [[-1.5 ** 0.5, 0.0], [1.5 ** 0.5, -1.5 ** 0.5], [0.0, 1.5 ** 0.5]]),
])
def test_integer_data_is_converted_to_float64(transform, expected):
    """Columns 1, 3, 2 and 4, 0, 8: means 2 and 4, population stds sqrt(2/3) and 4 sqrt(2/3)."""
    x = np.array([[1, 4], [3, 0], [2, 8]])
    out, _ = transform(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-15)


# ----------------------------------------------------- on the worksheet data
@pytest.mark.parametrize("transform", [min_max_scale, standardize])
def test_per_image_transform_keeps_the_order_of_pixel_values(transform):
    images = random_images()
    out, _ = transform(images, axis=(1, 2, 3))
    n = images.shape[0]
    flat_in, flat_out = images.reshape(n, -1), out.reshape(n, -1)
    order = np.argsort(flat_in, axis=1, kind="stable")
    sorted_out = np.take_along_axis(flat_out, order, axis=1)
    diffs = np.diff(sorted_out, axis=1)
    bad = np.flatnonzero(np.any(diffs < 0, axis=1))
    assert bad.size == 0, f"{transform.__name__}: pixel order changed in images {bad.tolist()}"
    # and the transform is not the identity: the images really were rescaled
    assert not np.allclose(out, images), transform.__name__


def test_per_image_min_max_on_random_images_matches_numpy():
    images = random_images()
    scaled, _ = min_max_scale(images, axis=(1, 2, 3))
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(scaled, (images - lo) / (hi - lo), rtol=1e-13)
    np.testing.assert_array_equal(scaled.min(axis=(1, 2, 3)), 0.0)
