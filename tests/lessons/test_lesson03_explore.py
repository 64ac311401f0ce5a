"""Lesson 03's compute functions and explorer, against closed forms and bnlib's own update."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from bnlib import data, nn
from bnlib.batchnorm import batchnorm_forward
from bnlib.course import seeds, widgets
from bnlib.lessons.lesson03 import explore


@pytest.mark.parametrize("momentum,batch_size,unbiased",
                         [(0.9, 32, False), (0.99, 8, False), (0.5, 4, True)])
def test_moving_statistics_match_batchnorm_forward_updates(momentum, batch_size, unbiased):
    """The vectorized run equals feeding the same batches through batchnorm_forward."""
    steps = 150
    run = explore.moving_statistics(momentum, batch_size, steps, unbiased=unbiased)
    data = explore.training_set()
    rng = np.random.default_rng(1)
    per_epoch = len(data) // batch_size
    mm, mv = np.zeros(1), np.ones(1)
    for step in range(steps):
        if step % per_epoch == 0:
            order = rng.permutation(len(data))
        k = step % per_epoch
        batch = data[order[k * batch_size:(k + 1) * batch_size]]
        _, _, mm, mv = batchnorm_forward(batch, np.ones(1), np.zeros(1), mm, mv, training=True,
                                         momentum=momentum, unbiased_moving_variance=unbiased)
        assert run.batch_mean[step] == pytest.approx(batch.mean(), abs=1e-12)
        assert run.batch_var[step] == pytest.approx(batch.var(), abs=1e-12)
    assert run.moving_mean[-1] == pytest.approx(mm[0], abs=1e-12)
    assert run.moving_var[-1] == pytest.approx(mv[0], abs=1e-12)


def test_moving_statistics_cover_several_epochs():
    """With batch 256 an epoch is 15 batches; 40 steps wrap around twice."""
    run = explore.moving_statistics(0.9, 256, 40)
    assert run.batch_mean.shape == (40,)
    assert np.all(np.isfinite(run.moving_var))


@pytest.mark.parametrize("momentum", [0.99, 0.999])
def test_moving_mean_start_up_gap_follows_momentum_power(momentum):
    """Started at 0, the moving mean still misses about m^N of the training mean."""
    steps = 1500
    run = explore.moving_statistics(momentum, 32, steps)
    predicted = run.train_mean * momentum ** steps
    assert abs(run.train_mean - run.moving_mean[-1]) == pytest.approx(predicted, abs=0.06)


def test_small_batches_bias_the_moving_variance_by_b_minus_1_over_b():
    biased = explore.moving_statistics(0.99, 4, 3000)
    unbiased = explore.moving_statistics(0.99, 4, 3000, unbiased=True)
    assert biased.moving_var[1000:].mean() / biased.train_var == pytest.approx(0.75, abs=0.05)
    assert unbiased.moving_var[1000:].mean() / unbiased.train_var == pytest.approx(1.0, abs=0.05)


def test_fit_gamma_beta_reaches_a_stationary_point_away_from_1_and_0():
    fit = explore.fit_gamma_beta()
    x_hat = (fit.x - fit.x.mean()) / np.sqrt(fit.x.var() + 1e-3)
    p = 1.0 / (1.0 + np.exp(-(fit.gamma[-1] * x_hat + fit.beta[-1])))
    # gradient of the mean cross-entropy, written independently of bnlib's backward
    grad = np.array([np.mean((p - fit.y) * x_hat), np.mean(p - fit.y)])
    assert np.max(np.abs(grad)) < 1e-4
    # the same optimum from scipy's BFGS on the same loss
    from scipy.optimize import minimize

    def loss(params):
        z = params[0] * x_hat + params[1]
        return np.mean(np.logaddexp(0.0, z) - fit.y * z)

    best = minimize(loss, [1.0, 0.0], method="BFGS").x
    np.testing.assert_allclose([fit.gamma[-1], fit.beta[-1]], best, atol=1e-2)
    assert fit.gamma[-1] > 2.5 and fit.beta[-1] < -2.5
    assert np.all(np.diff(fit.loss) <= 1e-12)  # gradient descent on a convex loss: no increase
    assert fit.gamma[0] == 1.0 and fit.beta[0] == 0.0


def test_fraction_near_zero_closed_form():
    fit = explore.fit_gamma_beta()
    # with gamma=1, beta=0 the inputs are the standardized x: count |x_hat| <= 1 directly
    x_hat = (fit.x - fit.x.mean()) / fit.x.std()
    assert explore.fraction_near_zero(fit, 1.0, 0.0) == np.mean(np.abs(x_hat) <= 1)
    assert explore.fraction_near_zero(fit, 0.0, 5.0) == 0.0


def test_statistics_scene_readout_matches_the_run():
    fig, text = explore.StatisticsScene().render(batch_size=16, momentum=0.9)
    run = explore.moving_statistics(0.9, 16, 500)
    assert f"std of the batch means {run.batch_mean.std():.3f}" in text
    assert f"moving mean {run.moving_mean[-1]:.3f}" in text
    assert len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), run.moving_mean)


def test_statistics_explorer_updates_on_slider_moves():
    explorer = explore.statistics_explorer()
    before, text_before = explorer.updates, explorer.readout.value
    explorer.controls["batch_size"].value = 128
    assert explorer.updates == before + 1
    assert explorer.readout.value != text_before
    run = explore.moving_statistics(0.99, 128, 500)
    assert f"{run.batch_mean.std():.3f}" in explorer.readout.value
    explorer.controls["momentum"].value = 0.9
    assert explorer.updates == before + 2
    run = explore.moving_statistics(0.9, 128, 500)
    assert f"moving mean {run.moving_mean[-1]:.3f}" in explorer.readout.value
    np.testing.assert_allclose(explorer.figure.axes[0].lines[0].get_ydata(), run.moving_mean)



def test_statistics_scene_limits_hold_the_data_at_every_setting():
    """Fixed limits (no full redraw per update) that show every batch mean and moving statistic
    at every control setting. Batch variances of tiny batches are cut off on purpose."""
    explorer = explore.statistics_explorer()
    sizes, momenta = explorer.controls["batch_size"], explorer.controls["momentum"]
    ax_mean, ax_var = explorer.figure.axes
    limits = [(ax.get_xlim(), ax.get_ylim()) for ax in (ax_mean, ax_var)]
    for batch_size in range(sizes.min, sizes.max + 1, sizes.step):
        for momentum in momenta.options:
            explorer.scene.update(batch_size=batch_size, momentum=momentum)
            assert [(ax.get_xlim(), ax.get_ylim()) for ax in (ax_mean, ax_var)] == limits
            for ax, xy in ((ax_mean, ax_mean.collections[0].get_offsets()),
                           (ax_mean, ax_mean.lines[0].get_xydata()),
                           (ax_var, ax_var.lines[0].get_xydata())):
                (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
                assert x0 < xy[:, 0].min() and xy[:, 0].max() < x1
                assert y0 < xy[:, 1].min() and xy[:, 1].max() < y1, (batch_size, momentum)


@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99])
def test_moving_mean_jitter_matches_many_simulated_averages(momentum):
    """The closed form against the spread of 4,000 simulated moving averages of iid batch means."""
    rng = np.random.default_rng(7)
    batch_means = 3.0 + 2.0 / np.sqrt(32) * rng.standard_normal((4000, 3000))
    y = np.full(4000, 3.0)
    for t in range(3000):
        y = momentum * y + (1 - momentum) * batch_means[:, t]
    predicted = explore.moving_mean_jitter(momentum, 32, 4.0)
    assert y.std() == pytest.approx(predicted, rel=0.05)


@pytest.mark.slow
def test_gamma_beta_claims_hold_on_the_test_seeds():
    """Lesson 03's claims about learning gamma and beta, on five draws the lesson does not use."""
    fits = [explore.fit_gamma_beta(seed=seed) for seed in seeds.TEST_SEEDS]
    failed = {c: d for c, (holds, d) in explore.gamma_beta_verdicts(fits).items()
              if not holds}
    assert not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds.TEST_SEEDS)
def test_warmup_claims_hold_on_the_test_seeds(seed):
    """Lesson 03's warm-up claims with other batch orders (the seed shuffles the batches)."""
    runs = {m: explore.moving_statistics(m, 32, 2000, seed=seed) for m in (0.9, 0.99, 0.999)}
    failed = {c: d for c, (holds, d) in explore.warmup_verdicts(runs).items() if not holds}
    assert not failed, failed


def test_readout_matches_the_scene_without_a_figure_left_open():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    text = widgets.readout(explore.StatisticsScene, batch_size=32, momentum=0.99)
    assert len(plt.get_fignums()) == before
    assert text == explore.StatisticsScene().update(batch_size=32, momentum=0.99)
    plt.close("all")


def test_exact_statistics_are_the_layer_inputs_moments_over_the_data():
    """Against the first layer's input computed by hand (no bias before batch norm), and the
    second's from the exactly normalized first layer; the model itself is left unchanged."""
    split = data.digits()
    model = nn.MLP(explore.LAG_SIZES, norm="batch", seed=3)
    nn.train(model, split, steps=30, batch_size=32, lr=0.5, seed=3)
    before = model.state()
    exact = explore.exact_statistics(model, split.x_train)
    z1 = split.x_train @ model.weights[0]
    np.testing.assert_allclose(exact.norms[0].moving_mean, z1.mean(0), atol=1e-12)
    np.testing.assert_allclose(exact.norms[0].moving_variance, z1.var(0), atol=1e-12)
    layer = model.norms[0]
    h1 = 1 / (1 + np.exp(-(layer.gamma * (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + layer.eps)
                           + layer.beta)))
    z2 = h1 @ model.weights[1]
    np.testing.assert_allclose(exact.norms[1].moving_mean, z2.mean(0), atol=1e-12)
    np.testing.assert_allclose(exact.norms[1].moving_variance, z2.var(0), atol=1e-12)
    after = model.state()
    for a, b in zip(before["norms"], after["norms"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert [n.momentum for n in exact.norms] == [n.momentum for n in model.norms]


def test_lag_run_starts_without_a_gap_and_records_every_evaluation():
    run = explore.lag_run(0)
    steps = np.arange(0, explore.LAG_STEPS + 1, explore.LAG_EVAL_EVERY)
    np.testing.assert_array_equal(run.eval_step, steps)
    assert run.gap[0] < 1e-12          # started at the exact statistics
    assert run.acc_moving[0] == run.acc_exact[0]


@pytest.mark.slow
def test_lag_claims_hold_on_the_test_seeds():
    """Lesson 03's claims about the lag of the moving statistics, on five seeds it does not use."""
    runs = explore.lag_runs(seeds.TEST_SEEDS)
    failed = {c: d for c, (holds, d) in explore.lag_verdicts(runs).items() if not holds}
    assert not failed, failed


def test_case3a_figure_shares_one_grey_scale_per_row():
    images = data.random_images()[:10]
    normalized = (images - images.mean(0)) / np.sqrt(images.var(0) + 1e-8)
    fig = explore.case3a_figure(images, normalized)
    rows = [[im for ax in fig.axes for im in ax.images if ax.get_title().startswith(name)]
            for name in ("raw", "normalized")]
    for row, values in zip(rows, (images, normalized)):
        assert len(row) == 2
        assert {im.get_clim() for im in row} == {(values.min(), values.max())}
    means = images.mean(axis=(1, 2, 3))
    assert rows[0][0].get_array().mean() == pytest.approx(means.min())
    assert rows[0][1].get_array().mean() == pytest.approx(means.max())
    assert len(fig.axes) == 8   # 4 images, 2 histograms, 2 colour bars
