"""Lesson 00's warm-up explorer: standardizing a sample whose mean and spread you choose."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from bnlib.lessons.lesson00 import explore


@pytest.mark.parametrize("mean,scale", [(5.0, 3.0), (-10.0, 0.5), (10.0, 6.0)])
def test_standardized_sample_has_mean_0_std_1(mean, scale):
    x, z = explore.standardized_sample(mean, scale)
    assert x.shape == z.shape == (500, 1)
    np.testing.assert_allclose(z, (x - x.mean()) / x.std(), atol=1e-12)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12


@pytest.mark.parametrize("mean,scale", [(-10.0, 6.0), (10.0, 6.0)])
def test_raw_histogram_fits_in_the_axes_at_the_slider_extremes(mean, scale):
    fig, _ = explore.StandardizeScene().render(mean=mean, scale=scale)
    x, _ = explore.standardized_sample(mean, scale)
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= x.min() and x.max() <= hi


def test_view_never_shows_a_signed_zero_mean():
    fig, text = explore.StandardizeScene().render(mean=5.0, scale=3.0)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "-0.00" not in titles and "-0.000" not in text
    assert "standardized: mean 0.000, std 1.000" in text


def test_explorer_updates_on_control_moves():
    explorer = explore.standardize_explorer()
    before, text_before = explorer.updates, explorer.readout.value
    explorer.controls["mean"].value = -4.0
    assert explorer.updates == before + 1
    assert explorer.readout.value != text_before
    x, _ = explore.standardized_sample(-4.0, 3.0)
    assert f"raw: mean {x.mean():+.3f}" in explorer.readout.value
