"""Lesson 06 part 1: weighted line fits, density-ratio estimation, the shift explorer."""
from __future__ import annotations

import numpy as np
import pytest

from bnlib import data, explore_shift


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_line_matches_polyfit(seed):
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=40), rng.normal(size=40), rng.uniform(0.1, 3, size=40)
    # np.polyfit's weights multiply the residuals (not their squares): pass sqrt(w).
    expected = np.polyfit(x, y, 1, w=np.sqrt(w))
    np.testing.assert_allclose(explore_shift.fit_line(x, y, w), expected, rtol=1e-10)
    np.testing.assert_allclose(explore_shift.fit_line(x, y), np.polyfit(x, y, 1), rtol=1e-10)


def test_fit_line_recovers_exact_line():
    x = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(explore_shift.fit_line(x, 3 * x - 2), [3, -2], atol=1e-12)


def test_importance_weights_are_the_density_ratio():
    d = data.covariate_shift(1.0, seed=3)
    w = explore_shift.importance_weights(d.x_source, d.source_pdf, d.target_pdf)
    from scipy.stats import norm
    expected = norm.pdf(d.x_source, 1.0, 0.5) / norm.pdf(d.x_source, 0.0, 0.7)
    np.testing.assert_allclose(w, expected, rtol=1e-12)


def test_classifier_ratio_approaches_true_ratio_on_a_large_sample():
    d = data.covariate_shift(1.0, n_source=20000, n_target=10000, seed=4)
    predict = explore_shift.fit_domain_classifier(d.x_source, d.x_target)
    x = np.linspace(-0.5, 1.5, 21)  # where both densities have mass
    est = explore_shift.odds_weights(predict(x), 20000, 10000)
    true = d.target_pdf(x) / d.source_pdf(x)
    np.testing.assert_allclose(est, true, rtol=0.1)


@pytest.mark.parametrize("p, ns, nt, expected", [(0.5, 100, 100, 1.0), (0.5, 300, 100, 3.0),
                                                 (0.8, 100, 100, 4.0), (0.2, 50, 100, 0.125)])
def test_odds_weights(p, ns, nt, expected):
    assert explore_shift.odds_weights(p, ns, nt) == pytest.approx(expected)


@pytest.mark.parametrize("w, expected", [(np.ones(10), 10.0), (np.r_[1.0, np.zeros(9)], 1.0),
                                         (np.array([1.0, 1.0, 2.0, 2.0]), 3.6)])
def test_effective_sample_size(w, expected):
    assert explore_shift.effective_sample_size(w) == pytest.approx(expected)


def test_weighting_repairs_the_shifted_fit():
    e = explore_shift.shift_experiment(1.5)["errors"]
    assert e["plain"][0] < 0.5 < 2.0 < e["plain"][1]          # good on source, bad on target
    assert e["known"][1] < e["plain"][1] / 5
    assert e["estimated"][1] < e["plain"][1] / 5
    assert e["best"][1] <= min(e["known"][1], e["estimated"][1]) + 1e-12


def test_no_shift_no_harm():
    e = explore_shift.shift_experiment(0.0)["errors"]
    assert e["known"][1] <= e["plain"][1]


def test_shift_explorer_updates_readout():
    explorer = explore_shift.shift_explorer()
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["shift"].value = 2.5
    assert explorer.updates == updates + 1
    assert explorer.readout.value != before
    e = explore_shift.shift_experiment(2.5)["errors"]
    assert f"plain {e['plain'][1]:.3f}" in explorer.readout.value
    assert f"{e['known'][1]:.3f}" in explorer.readout.value
    xs = explorer.figure.axes[0].collections[1].get_offsets()[:, 0]
    np.testing.assert_allclose(xs, data.covariate_shift(2.5).x_target)
