"""Data the lessons use: all generated from a seed or shipped in a package (no downloads)."""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from bnlib._validate import check_choice, check_float_dtype, check_int, check_real, check_seed

__all__ = ["SIGNAL_KINDS", "random_images", "Split", "digits", "signal", "true_function",
           "ShiftedData", "covariate_shift"]

SIGNAL_KINDS = ("stationary", "step", "drift", "sinusoid")


def random_images(seed: int = 678, n: int = 30, size: int = 32) -> np.ndarray:
    """The worksheet's toy "images": Gaussian noise with a random brightness and contrast.

    Image i is ``offset_i + scale_i * noise`` with integer offset in [0, 60) and
    integer scale in [1, 5), so images differ in mean and spread.

    Returns
    -------
    ndarray of shape (n, size, size, 1), float64
    """
    check_seed("seed", seed)
    n = check_int("n", n, minimum=1, hint=" (the number of images)")
    size = check_int("size", size, minimum=1, hint=" (the side of an image in pixels)")
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 60, size=n).reshape(n, 1, 1, 1)
    scales = rng.integers(1, 5, size=n).reshape(n, 1, 1, 1)
    return offsets + scales * rng.standard_normal((n, size, size, 1))


class Split(NamedTuple):
    """A train/test split: x of shape (N, 64) in [0, 1], y of shape (N,) with labels 0-9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits(seed: int = 0, test_fraction: float = 0.25, dtype=np.float64) -> Split:
    """scikit-learn's 1,797 8x8 handwritten digits (shipped with the package), split.

    Pixels (0-16) are divided by 16. The split is stratified by class and seeded.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_int("seed", seed, minimum=0, maximum=2**32 - 1)
    test_fraction = check_real("test_fraction", test_fraction, minimum=0, maximum=1,
                               open_min=True, open_max=True)
    dtype = check_float_dtype("dtype", dtype)
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(dtype)
    x_tr, x_te, y_tr, y_te = train_test_split(x, bunch.target, test_size=test_fraction,
                                              random_state=seed, stratify=bunch.target)
    return Split(x_tr, y_tr, x_te, y_te)


def signal(kind: str, n: int = 500, *, noise: float = 1.0, seed: int = 0):
    """A noisy stream and its true (underlying) mean, for smoothing experiments.

    Parameters
    ----------
    kind : {"stationary", "step", "drift", "sinusoid"}
        The underlying mean: constant 2; a jump from 0 to 4 halfway; a slow
        linear drift from 0 to 5; a sine wave of amplitude 3 and period n/4.
    n : int
        Length of the stream.
    noise : float
        Standard deviation of the Gaussian noise added.
    seed : int

    Returns
    -------
    x : ndarray of shape (n,)
        The noisy observations.
    truth : ndarray of shape (n,)
        The underlying mean at each step.
    """
    check_choice("kind", kind, SIGNAL_KINDS)
    check_int("n", n, minimum=1, hint=" (the length of the stream)")
    check_real("noise", noise, minimum=0, hint=" (a standard deviation)")
    check_seed("seed", seed)
    t = np.arange(n, dtype=np.float64)
    shapes = {
        "stationary": lambda: np.full(n, 2.0),
        "step": lambda: np.where(t < n // 2, 0.0, 4.0),
        "drift": lambda: 5.0 * t / max(n - 1, 1),
        "sinusoid": lambda: 3.0 * np.sin(2 * np.pi * t / (n / 4)),
    }
    truth = shapes[kind]()
    x = truth + noise * np.random.default_rng(seed).standard_normal(n)
    return x, truth


def _normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def true_function(x):
    """The shared regression function E[y | x] of the covariate-shift data."""
    return np.sin(2.0 * x) + 0.5 * x


class ShiftedData(NamedTuple):
    """Source and target samples with one shared P(y | x) and known input densities."""

    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    source_pdf: Callable[[np.ndarray], np.ndarray]
    target_pdf: Callable[[np.ndarray], np.ndarray]


def covariate_shift(shift: float = 1.5, n_source: int = 400, n_target: int = 400, *,
                    noise: float = 0.2, seed: int = 0) -> ShiftedData:
    """Covariate shift in one dimension: P(x) moves, P(y | x) stays.

    x_source ~ N(0, 0.7^2), x_target ~ N(shift, 0.5^2), and for both
    y = sin(2x) + x / 2 + noise * N(0, 1) (see :func:`true_function`).

    Returns
    -------
    ShiftedData
        x arrays of shape (n,), y arrays of shape (n,), and the two input
        densities as functions (for importance weights P_T(x) / P_S(x)).
    """
    shift = check_real("shift", shift)
    n_source = check_int("n_source", n_source, minimum=1)
    n_target = check_int("n_target", n_target, minimum=1)
    noise = check_real("noise", noise, minimum=0, hint=" (a standard deviation)")
    check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    src = (0.0, 0.7)
    tgt = (float(shift), 0.5)
    x_s = rng.normal(*src, size=n_source)
    x_t = rng.normal(*tgt, size=n_target)
    y_s = true_function(x_s) + noise * rng.standard_normal(n_source)
    y_t = true_function(x_t) + noise * rng.standard_normal(n_target)
    return ShiftedData(x_s, y_s, x_t, y_t,
                       lambda x: _normal_pdf(x, *src), lambda x: _normal_pdf(x, *tgt))
