"""Lesson 09's checkers accept a correct answer, report a blank one and a missing return, and
name each mistake, a hard-coded eps too (the contract, tests/lessons/checker_contract.py);
their cases vary every setting, and the folding reference matches bnlib.

The answers below are written independently of the checkers (loops over channels,
explicit sums), as a learner would write them.
"""
from __future__ import annotations

import numpy as np

from bnlib.lessons.lesson09 import exercises

from checker_contract import contract  # tests/lessons/: every checker's tests


# ---------------------------------------------------------------- 09.1 spatial batch norm

def spatial_ok(x, gamma, beta, eps):
    out = np.empty_like(x)
    for c in range(x.shape[-1]):       # one channel at a time: all of its N*H*W values
        values = x[..., c]
        mean = values.sum() / values.size
        var = ((values - mean) ** 2).sum() / values.size
        out[..., c] = gamma[c] * (values - mean) / np.sqrt(var + eps) + beta[c]
    return out


def spatial_per_pixel(x, gamma, beta, eps):
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta


def spatial_per_image(x, gamma, beta, eps):
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def spatial_layer(x, gamma, beta, eps):
    mean, var = x.mean((1, 2, 3), keepdims=True), x.var((1, 2, 3), keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def spatial_everything(x, gamma, beta, eps):
    return gamma * (x - x.mean()) / np.sqrt(x.var() + eps) + beta


def spatial_unbiased(x, gamma, beta, eps):
    flat = x.reshape(-1, x.shape[-1])
    return (gamma * (flat - flat.mean(0)) / np.sqrt(flat.var(0, ddof=1) + eps)
            + beta).reshape(x.shape)


def spatial_eps_outside(x, gamma, beta, eps):
    flat = x.reshape(-1, x.shape[-1])
    return (gamma * (flat - flat.mean(0)) / (flat.std(0) + eps) + beta).reshape(x.shape)


def spatial_no_affine(x, gamma, beta, eps):
    return spatial_ok(x, np.ones_like(gamma), np.zeros_like(beta), eps)


def spatial_fixed_eps(x, gamma, beta, eps):
    return spatial_ok(x, gamma, beta, 1e-3)


SPATIAL_MISTAKES = [
    (spatial_per_pixel, "per-pixel statistics"),
    (spatial_per_image, "instance norm"),
    (spatial_layer, "layer norm"),
    (spatial_everything, "mixes the channels"),
    (spatial_unbiased, "biased variance"),
    (spatial_eps_outside, "inside the square root"),
    (spatial_no_affine, "gamma * x_hat + beta"),
    (spatial_fixed_eps, "use the eps you are given"),
]


# ---------------------------------------------------------------- 09.2 folding into a conv

def fold_ok(kernel, bias, gamma, beta, mean, var, eps):
    new_kernel = np.empty_like(kernel)
    new_bias = np.empty_like(bias)
    for o in range(kernel.shape[-1]):    # each output channel's filter, one at a time
        sigma = np.sqrt(var[o] + eps)
        new_kernel[..., o] = kernel[..., o] * gamma[o] / sigma
        new_bias[o] = gamma[o] * (bias[o] - mean[o]) / sigma + beta[o]
    return new_kernel, new_bias


def fold_input_axis(kernel, bias, gamma, beta, mean, var, eps):
    k, b = fold_ok(kernel, bias, gamma, beta, mean, var, eps)
    scale = gamma / np.sqrt(var + eps)
    return np.einsum("abio,i->abio", kernel, scale), b


def fold_no_beta(kernel, bias, gamma, beta, mean, var, eps):
    return fold_ok(kernel, bias, gamma, np.zeros_like(beta), mean, var, eps)


def fold_no_mean(kernel, bias, gamma, beta, mean, var, eps):
    return fold_ok(kernel, bias, gamma, beta, np.zeros_like(mean), var, eps)


def fold_eps_outside(kernel, bias, gamma, beta, mean, var, eps):
    scale = gamma / (np.sqrt(var) + eps)
    return kernel * scale, scale * (bias - mean) + beta


def fold_by_variance(kernel, bias, gamma, beta, mean, var, eps):
    scale = gamma / (var + eps)
    return kernel * scale, scale * (bias - mean) + beta


def fold_bias_unscaled(kernel, bias, gamma, beta, mean, var, eps):
    k, _ = fold_ok(kernel, bias, gamma, beta, mean, var, eps)
    return k, bias - mean + beta


def fold_fixed_eps(kernel, bias, gamma, beta, mean, var, eps):
    return fold_ok(kernel, bias, gamma, beta, mean, var, 1e-3)


FOLD_MISTAKES = [
    (fold_input_axis, "input-channel axis"),
    (fold_no_beta, "add β"),
    (fold_no_mean, "subtract the moving mean"),
    (fold_eps_outside, "inside the square root"),
    (fold_by_variance, "not by the variance"),
    (fold_bias_unscaled, "scale the centred bias"),
    (fold_fixed_eps, "use the eps you are given"),
]


def test_fold_conv_reference_matches_bnlib():
    from bnlib.conv import fold_into_conv
    for case in exercises._fold_cases():
        for ours, core in zip(fold_ok(*case), fold_into_conv(*case)):
            np.testing.assert_allclose(ours, core, rtol=1e-12)


# ---------------------------------------------------------------- 09.3 channels first

def nchw_ok(x, gamma, beta, eps):
    nhwc = x.transpose(0, 2, 3, 1)
    return spatial_ok(nhwc, gamma, beta, eps).transpose(0, 3, 1, 2)


def nchw_channels_last_habit(x, gamma, beta, eps):
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def nchw_flat_gamma(x, gamma, beta, eps):
    mean, var = x.mean((0, 2, 3), keepdims=True), x.var((0, 2, 3), keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def nchw_eps_outside(x, gamma, beta, eps):
    mean, std = x.mean((0, 2, 3), keepdims=True), x.std((0, 2, 3), keepdims=True)
    return gamma[:, None, None] * (x - mean) / (std + eps) + beta[:, None, None]


def nchw_unbiased(x, gamma, beta, eps):
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean((0, 2, 3), keepdims=True)
    var = ((x - mean) ** 2).sum((0, 2, 3), keepdims=True) / (n - 1)
    return gamma[:, None, None] * (x - mean) / np.sqrt(var + eps) + beta[:, None, None]


def nchw_fixed_eps(x, gamma, beta, eps):
    return nchw_ok(x, gamma, beta, 1e-3)


CHECKERS = {
    "spatial": (exercises.check_spatial_batchnorm, spatial_ok, SPATIAL_MISTAKES),
    "fold_conv": (exercises.check_fold_conv, fold_ok, FOLD_MISTAKES),
    "channels_first": (exercises.check_channels_first_batchnorm, nchw_ok, [
        (nchw_channels_last_habit, "the channels are axis 1"),
        (nchw_flat_gamma, "reshape them to (1, C, 1, 1)"),
        (nchw_eps_outside, "inside the square root"),
        (nchw_unbiased, "biased variance"),
        (nchw_fixed_eps, "use the eps you are given")]),
}
(test_checker_accepts_a_correct_answer, test_checker_reports_the_stub_as_not_attempted,
 test_checker_reports_a_missing_return, test_checker_names_the_mistake) = contract(CHECKERS)


def test_cases_vary_every_setting():
    shapes = {case[0].shape for case in exercises._image_cases(91)}
    eps = {case[3] for case in exercises._image_cases(91)}
    assert len(shapes) == 3 and len({s[-1] for s in shapes}) == 3 and len(eps) == 3
    fold = exercises._fold_cases()
    assert len({c[0].shape for c in fold}) == 3 and len({c[-1] for c in fold}) == 3
