"""Lesson 04's explorer: its gradients against closed forms, and its fixed-limit drawing.

(The staged and compact backward passes live in the lesson itself, which checks them
against bnlib, numerical gradients and Keras.)"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from bnlib.lessons.lesson04 import explore


@pytest.mark.parametrize("pattern", explore.PATTERNS)
@pytest.mark.parametrize("batch_size", [2, 8, 33])
def test_backward_example_gradients_sum_to_zero_and_match_dbeta(pattern, batch_size):
    ex = explore.backward_example(pattern, batch_size)
    assert ex.dout.shape == ex.dx.shape == (batch_size, 1)
    assert abs(ex.dx.sum()) < 1e-10
    assert ex.dbeta == pytest.approx(ex.dout.sum())
    assert ex.dgamma == pytest.approx(float((ex.dout * ex.x_hat).sum()))


def test_constant_upstream_gradient_gives_zero_dx():
    ex = explore.backward_example("all ones", 8)
    assert np.abs(ex.dx).max() < 1e-12
    assert ex.dbeta == pytest.approx(8.0)


def test_upstream_equal_to_x_hat_leaves_only_the_eps_term():
    """sum(dx * x_hat) = gamma * inv_std * dgamma * eps / (var + eps) (closed form)."""
    ex = explore.backward_example("equal to x_hat", 8)
    var, eps, gamma = ex.x.var(), 1e-3, 1.5
    predicted = gamma / np.sqrt(var + eps) * ex.dgamma * eps / (var + eps)
    assert float((ex.dx * ex.x_hat).sum()) == pytest.approx(predicted, rel=1e-9)


def test_upstream_gradient_rejects_unknown_patterns():
    with pytest.raises(ValueError, match="pattern must be one of"):
        explore.upstream_gradient("zigzag", 4)


def test_backward_scene_readout():
    fig, text = explore.BackwardScene().render(pattern="all ones", batch_size=8)
    assert "dbeta = 8.000" in text
    assert "largest |dx| = 0 (to round-off)" in text
    assert "-0.000" not in text
    dout_lines, dx_lines = fig.axes[0].collections[:2]
    assert [seg[1][1] for seg in dout_lines.get_segments()] == [1.0] * 8
    assert max(abs(seg[1][1]) for seg in dx_lines.get_segments()) < 1e-12


def test_backward_explorer_updates_on_control_moves():
    explorer = explore.backward_explorer()
    before, text_before = explorer.updates, explorer.readout.value
    explorer.controls["pattern"].value = "one-hot"
    assert explorer.updates == before + 1
    assert explorer.readout.value != text_before
    assert "dbeta = 1.000" in explorer.readout.value
    explorer.controls["batch_size"].value = 20
    assert explorer.updates == before + 2
    ex = explore.backward_example("one-hot", 20)
    assert f"dgamma = {ex.dgamma:.3f}" in explorer.readout.value
    dx_heights = [seg[1][1] for seg in explorer.figure.axes[0].collections[1].get_segments()]
    np.testing.assert_allclose(dx_heights, ex.dx.ravel())



def _in_axes_fraction(ax, artist, points):
    return ax.transAxes.inverted().transform(artist.get_transform().transform(points))


def test_backward_scene_limits_hold_the_bars_at_every_setting():
    """Fixed limits (no full redraw per update) that show every bar for every pattern and
    batch size, scaled as autoscaling would: the bars and 0 span all but 5% margins."""
    explorer = explore.backward_explorer()
    sizes = explorer.controls["batch_size"]
    ax = explorer.figure.axes[0]
    for pattern in explorer.controls["pattern"].options:
        for batch_size in range(sizes.min, sizes.max + 1, sizes.step):
            explorer.scene.update(pattern=pattern, batch_size=batch_size)
            assert (ax.get_xlim(), ax.get_ylim()) == ((0.0, 1.0), (0.0, 1.0))
            bars = [_in_axes_fraction(ax, lines, np.concatenate(lines.get_segments()))
                    for lines in ax.collections[:2]]
            u = np.concatenate(bars)  # the bars' feet (at 0) and tops, as axes fractions
            assert u.min() > 0.0 and u.max() < 1.0, (pattern, batch_size)
            # margins of 5% of the span either side: the extremes sit 0.05 / 1.1 from the edges
            assert u[:, 1].min() == pytest.approx(0.05 / 1.1), (pattern, batch_size)
            assert u[:, 1].max() == pytest.approx(1.05 / 1.1), (pattern, batch_size)


@pytest.mark.parametrize("pattern, batch_size", [("random", 8), ("one-hot", 20),
                                                 ("all ones", 2), ("equal to x_hat", 64)])
def test_backward_scene_ticks_read_the_bars_values(pattern, batch_size):
    """The bars sit on a fixed [0, 1] axis: each tick label must stand where an example of
    that index or a gradient of that value is drawn, and its grid line too."""
    scene = explore.BackwardScene()
    scene.update(pattern=pattern, batch_size=batch_size)
    ax = scene.fig.axes[0]
    for ticks, axis in ((scene.x_ticks, 0), (scene.y_ticks, 1)):
        shown = [text for text in ticks.labels if text.get_visible()]
        assert len(shown) >= min(batch_size, 3)
        values = [float(text.get_text().replace("\N{MINUS SIGN}", "-")) for text in shown]
        # an example's bars are drawn 0.2 either side of its index
        points = np.zeros((len(values), 2))
        points[:, axis] = values
        expected = _in_axes_fraction(ax, scene.dout, points)[:, axis]
        np.testing.assert_allclose([text.get_position()[axis] for text in shown], expected)
        np.testing.assert_allclose(ticks.marks.get_xydata()[:, axis], expected)
        np.testing.assert_allclose([seg[0][axis] for seg in ticks.grid.get_segments()], expected)
        assert all(0.0 <= u <= 1.0 for u in expected)


def test_importing_bnlib_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, bnlib, bnlib.lessons.lesson04.explore, bnlib.lessons.lesson03.explore; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("pattern", explore.PATTERNS)
def test_batch_of_two_leaves_only_the_eps_leftover(pattern):
    """With two examples, 1 and x_hat span every dout: dx = gamma s eps/(var + eps) c x_hat,
    c the part of dout along x_hat (closed form derived by hand, lesson 04)."""
    ex = explore.backward_example(pattern, 2)
    x = ex.x.ravel()
    var, eps, gamma = x.var(), 1e-3, 1.5
    x_hat = (x - x.mean()) / np.sqrt(var + eps)
    c = (ex.dout.ravel() @ x_hat) / (x_hat @ x_hat)
    expected = gamma / np.sqrt(var + eps) * eps / (var + eps) * c * x_hat
    np.testing.assert_allclose(ex.dx.ravel(), expected, rtol=1e-9, atol=1e-15)
    assert np.abs(ex.dx).max() < 0.01
