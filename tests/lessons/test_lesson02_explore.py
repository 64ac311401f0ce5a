"""Lesson 02's compute functions and explorer, against closed forms and NumPy."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnlib.lessons.lesson02 import explore as es
from bnlib.data import SIGNAL_KINDS
from bnlib.course.seeds import TEST_SEEDS
from bnlib.ema import bias_correct, ema, ema_weights


@pytest.fixture(autouse=True)
def close_figures():
    """Views return open pyplot figures (a lesson shows them): close them after each test."""
    yield
    plt.close("all")


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.6])
def test_many_runs_columns_are_independent_emas(alpha):
    runs = es.many_runs(alpha, steps=30, runs=5, y0=1.0, seed=3)
    x = 2.0 + np.random.default_rng(3).standard_normal((30, 5))
    for j in range(5):
        np.testing.assert_allclose(runs[:, j], ema(x[:, j], alpha, y0=1.0))


@pytest.mark.parametrize("alpha", [0.02, 0.1, 0.3, 0.9])
def test_frequency_response_matches_fft_of_the_weights(alpha):
    """The gain is the Fourier transform of the impulse response alpha (1 - alpha)^tau."""
    n = 4096
    impulse = ema_weights(alpha, n)
    freqs = np.fft.rfftfreq(n)
    np.testing.assert_allclose(es.frequency_response(alpha, freqs), np.abs(np.fft.rfft(impulse)),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha, freq", [(0.1, 0.01), (0.1, 0.2), (0.3, 0.05), (0.02, 0.4)])
def test_measured_gain_matches_formula(alpha, freq):
    assert es.measured_gain(alpha, freq) == pytest.approx(es.frequency_response(alpha, freq),
                                                          rel=1e-6)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.5])
def test_gain_limits(alpha):
    g0, ghalf = es.frequency_response(alpha, [0.0, 0.5])
    assert g0 == pytest.approx(1.0) and ghalf == pytest.approx(alpha / (2 - alpha))


def test_steps_to_reach_on_a_known_curve():
    y = 1 - 0.9 ** np.arange(1, 50)       # EMA of ones from 0 at alpha = 0.1
    expected = int(np.ceil(np.log(1 / np.e) / np.log(0.9))) - 1
    assert es.steps_to_reach(y, 0.0, 1.0, 1 - 1 / np.e) == expected
    assert es.steps_to_reach(4 - y, 4.0, 3.0, 0.5) == es.steps_to_reach(y, 0.0, 1.0, 0.5)


def test_rmse_matches_numpy():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0])
    assert es.rmse(a, b) == pytest.approx(np.sqrt((0 + 4 + 9) / 3))


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_tracking_errors_are_rmse_of_the_returned_curves(kind):
    x, truth, mean_1t, smoothed, (err_mean, err_ema) = es.tracking(kind, 0.1)
    np.testing.assert_allclose(mean_1t, np.cumsum(x) / np.arange(1, len(x) + 1))
    assert smoothed[0] == pytest.approx(x[0])     # bias correction: first value kept exactly
    assert err_mean == pytest.approx(np.sqrt(np.mean((mean_1t - truth) ** 2)))
    assert err_ema == pytest.approx(np.sqrt(np.mean((smoothed - truth) ** 2)))


@pytest.mark.parametrize("kind, ema_wins", [("stationary", False), ("step", True),
                                            ("drift", True), ("sinusoid", True)])
def test_ema_beats_running_mean_only_when_the_mean_moves(kind, ema_wins):
    err_mean, err_ema = es.tracking(kind, 0.1)[-1]
    assert (err_ema < err_mean) == ema_wins


def test_tracking_explorer_updates_readout_and_plot():
    explorer = es.tracking_explorer()
    before, updates = explorer.readout.value, explorer.updates
    explorer.controls["kind"].value = "drift"
    assert explorer.updates == updates + 1 and explorer.readout.value != before
    explorer.controls["alpha"].value = 0.2
    err_mean, err_ema = es.tracking("drift", 0.2)[-1]
    assert f"running mean {err_mean:.3f}, EMA {err_ema:.3f}" in explorer.readout.value
    ema_line = explorer.figure.axes[0].lines[3]
    np.testing.assert_allclose(ema_line.get_ydata(), es.tracking("drift", 0.2)[3])


def points_under(artist, line) -> int:
    """How many of ``line``'s points a drawn ``artist`` (e.g. the legend) covers."""
    (x0, y0), (x1, y1) = artist.get_window_extent().get_points()
    x, y = line.get_transform().transform(line.get_xydata()).T
    return int(np.sum((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)))


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
@pytest.mark.parametrize("alpha", [0.005, 0.5])   # the slider's ends
def test_tracking_curves_fit_the_fixed_axes_and_clear_the_legend(kind, alpha):
    """The scene's fixed limits hold every curve, so no control move redraws the axes."""
    fig, _ = es.TrackingScene().render(kind=kind, alpha=alpha)
    fig.canvas.draw()
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert len(ax.lines) == 4
    for line in ax.lines:
        assert x0 < line.get_xdata().min() and line.get_xdata().max() < x1
        assert y0 < line.get_ydata().min() and line.get_ydata().max() < y1
        assert points_under(ax.get_legend(), line) == 0, line.get_label()


@pytest.mark.parametrize("alpha, freq", [(0.2, 1 / 125), (0.1, 1 / 125), (0.5, 0.1), (0.05, 0.002)])
def test_phase_delay_matches_a_measured_shift(alpha, freq):
    """The delay of the steady-state output, found independently by shifting the input."""
    t = np.arange(20_000)
    y = ema(np.cos(2 * np.pi * freq * t), alpha)[10_000:]
    gain = es.frequency_response(alpha, freq)
    d = es.phase_delay(alpha, freq)
    shifted = gain * np.cos(2 * np.pi * freq * (t[10_000:] - d))
    np.testing.assert_allclose(y, shifted, atol=1e-9)
    assert es.measured_delay(alpha, freq) == pytest.approx(d, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.3, 0.1, 0.01])
def test_slow_delay_tends_to_the_centre_of_mass(alpha):
    assert es.phase_delay(alpha, 1e-6) == pytest.approx((1 - alpha) / alpha, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 0.2, 0.1, 0.01])
def test_window_conventions_against_sums_of_the_weights(alpha):
    c = es.window_conventions(alpha)
    w = ema_weights(alpha, 20_000)
    ages = np.arange(20_000)
    assert c["centre_of_mass"] == pytest.approx(np.sum(ages * w), rel=1e-9)
    n = c["span"]
    assert 1 / n == pytest.approx(np.sum(w ** 2), rel=1e-9)   # the same noise: sigma^2 / N
    assert (n - 1) / 2 == pytest.approx(c["centre_of_mass"])  # the same mean age
    assert c["share"] == pytest.approx(w[:round(1 / alpha)].sum())


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_lag_and_noise_parts_add_up_to_the_ema_error(kind, alpha):
    x, truth = es.signal(kind, 500, noise=1.0, seed=0)
    lag_curve = bias_correct(ema(truth, alpha), alpha) - truth
    noise_curve = bias_correct(ema(x - truth, alpha), alpha)
    total, lag, noise = es.lag_and_noise(kind, alpha)
    assert total == pytest.approx(es.tracking(kind, alpha)[-1][1], rel=1e-12)
    assert total == pytest.approx(np.sqrt(np.mean((lag_curve + noise_curve) ** 2)), rel=1e-9)
    assert lag == pytest.approx(np.sqrt(np.mean(lag_curve ** 2)), rel=1e-9)
    assert noise == pytest.approx(np.sqrt(alpha / (2 - alpha)), rel=0.25)


def test_tracking_readout_splits_the_error():
    _, text = es.TrackingScene().render(kind="sinusoid", alpha=0.2)
    total, lag, noise = es.lag_and_noise("sinusoid", 0.2)
    assert f"EMA {total:.3f} = lag {lag:.3f} and noise {noise:.3f}" in text


@pytest.mark.slow
def test_lag_noise_tradeoff_on_the_test_seeds():
    """The lesson's claim: lag falls and noise grows with alpha, best alpha in (0.2, 0.4)."""
    result = es.lag_noise_tradeoff(TEST_SEEDS)
    assert result["lag_falls"] and result["noise_grows"]
    assert np.all((0.2 < result["best"]) & (result["best"] < 0.4))
