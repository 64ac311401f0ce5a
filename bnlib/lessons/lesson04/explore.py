"""Lesson 04: where the gradient of batch norm goes, and its explorer.

The staged and compact backward passes are what the lesson teaches, so they are
written out in the lesson itself (notebooks/scripts/04_batchnorm_backward.py) and
checked there against bnlib, numerical gradients and Keras; this module does not
keep a second copy. :func:`backward_example` runs one feature through bnlib's
forward and backward; :func:`backward_explorer` wires :class:`BackwardScene` to
controls (redrawn in place; ``BackwardScene().render(...)`` draws it once).
The comparison with Keras's automatic gradients lives in :mod:`bnlib.tf_compare`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from matplotlib import ticker, transforms
from matplotlib.lines import Line2D

from bnlib.course import widgets
from bnlib.batchnorm import batchnorm_backward, batchnorm_forward

PATTERNS = ("random", "all ones", "one-hot", "equal to x_hat")

__all__ = ["upstream_gradient", "backward_example", "BackwardScene", "backward_explorer"]


def upstream_gradient(pattern: str, n: int, seed: int = 0, x_hat=None) -> np.ndarray:
    """An upstream gradient dout of shape (n, 1) following a named pattern.

    Parameters
    ----------
    pattern : {"random", "all ones", "one-hot", "equal to x_hat"}
        Standard normal; constant 1; 1 for example 0 and 0 elsewhere; or a copy of
        ``x_hat`` (which must then be given).
    n : int
        Batch size.
    """
    if pattern == "random":
        return np.random.default_rng(seed).standard_normal((n, 1))
    if pattern == "all ones":
        return np.ones((n, 1))
    if pattern == "one-hot":
        return np.eye(n, 1)
    if pattern == "equal to x_hat":
        return np.array(x_hat, dtype=np.float64).reshape(n, 1)
    raise ValueError(f"pattern must be one of {PATTERNS}; got {pattern!r}")


class BackwardExample(NamedTuple):
    """One feature's batch, its upstream gradient and the gradients (arrays of shape (N, 1))."""

    x: np.ndarray
    x_hat: np.ndarray
    dout: np.ndarray
    dx: np.ndarray
    dgamma: float
    dbeta: float


@lru_cache(maxsize=128)
def backward_example(pattern: str = "random", batch_size: int = 8, gamma: float = 1.5,
                     seed: int = 0) -> BackwardExample:
    """Run one feature x ~ N(2, 1.5^2) of ``batch_size`` examples forward and backward."""
    x = np.random.default_rng(seed + 100).normal(2.0, 1.5, size=(batch_size, 1))
    g = np.array([gamma])
    _, cache, _, _ = batchnorm_forward(x, g, np.zeros(1), np.zeros(1), np.ones(1), training=True)
    dout = upstream_gradient(pattern, batch_size, seed, x_hat=cache.x_hat)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    return BackwardExample(x, cache.x_hat, dout, dx, float(dgamma[0]), float(dbeta[0]))


# The bars are drawn on fixed axis limits [0, 1] x [0, 1] (a limit change would redraw the
# whole figure), through a transform that maps example index and gradient onto them as
# autoscaling would: x from -0.8 to batch_size - 0.2, y over the bars and 0 with 5% margins.
# The ticks follow that transform; they are a few live artists of their own (see LiveTicks),
# since matplotlib's own axis costs most of an update to redraw.
X_PAD_LEFT, X_PAD_RIGHT = 0.8, 0.2
Y_MARGIN = 0.05  # matplotlib's default axes margin
MAX_LABELLED = 16  # up to this batch size, every example gets a tick label
# matplotlib's AutoLocator: its steps, and the bins it chooses for these axes' lengths
TICK_STEPS = [1, 2, 2.5, 5, 10]
X_TICK_BINS, Y_TICK_BINS = 9, 7


def _gradient_range(*heights) -> tuple:
    """The y range autoscaling gives to bars from 0: their extent and 0, plus 5% margins."""
    low = min(0.0, *(float(h.min()) for h in heights))
    high = max(0.0, *(float(h.max()) for h in heights))
    margin = Y_MARGIN * (high - low)
    return low - margin, high + margin


def _ticks_within(locator, low: float, high: float) -> np.ndarray:
    ticks = locator.tick_values(low, high)
    return ticks[(ticks >= low) & (ticks <= high)]


class BackwardScene(widgets.Scene):
    """Bars of the upstream gradient and of dx, example by example, for one feature."""

    def build(self) -> None:
        _, ax = self.subplots(figsize=(7.5, 3.0), left=0.1, right=0.8, bottom=0.17, top=0.88)
        self.to_axes = transforms.Affine2D()  # (example, gradient) -> axes fraction
        to_figure = self.to_axes + ax.transAxes
        # thick vertical lines instead of ax.bar: one collection each, several times faster;
        # lw 6 only sets the legend's handles, each update sets the bars' width
        self.dout = ax.vlines([0.0], 0, [0.0], lw=6, color="tab:blue", label="upstream dout",
                              transform=to_figure)
        self.dx = ax.vlines([0.0], 0, [0.0], lw=6, color="tab:orange", label="dx",
                            transform=to_figure)
        # live in drawing order: the grid lines under the bars, as in a full draw
        self.x_ticks = widgets.LiveTicks(self, ax, "x", MAX_LABELLED)
        self.y_ticks = widgets.LiveTicks(self, ax, "y", Y_TICK_BINS + 1)
        self.live(self.dout)
        self.live(self.dx)
        self.live(ax.add_line(Line2D([0, 1], [0, 0], color="black", lw=0.8, transform=(
            transforms.blended_transform_factory(ax.transAxes, to_figure)))))
        self.title = self.live(ax.set_title(" "))
        ax.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0), xticks=[], yticks=[],
               xlabel="example in the batch", ylabel="gradient")
        # fixed, clear of tick labels of up to five characters ("−0.10"): matplotlib would
        # place them from its own tick labels, which these axes do not have
        ax.xaxis.set_label_coords(0.5, -0.13)
        ax.yaxis.set_label_coords(-0.11, 0.5)
        # legend outside the axes, so it never hides the tallest bars
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        self.x_locator = ticker.MaxNLocator(nbins=X_TICK_BINS, steps=TICK_STEPS, integer=True)
        self.y_locator = ticker.MaxNLocator(nbins=Y_TICK_BINS, steps=TICK_STEPS)
        self.y_formatter = ticker.ScalarFormatter()
        self.y_formatter.create_dummy_axis()

    def update(self, pattern: str = "random", batch_size: int = 8) -> str:
        ex = backward_example(pattern, batch_size)
        examples = np.arange(batch_size)
        for lines, heights, offset in ((self.dout, ex.dout, -0.2), (self.dx, ex.dx, 0.2)):
            x = examples + offset
            lines.set_segments(np.stack([np.column_stack((x, 0.0 * x)),
                                         np.column_stack((x, heights.ravel()))], axis=1))
            lines.set_linewidth(max(1.5, 100.0 / batch_size))
        self._set_scale(batch_size, _gradient_range(ex.dout, ex.dx))
        self.title.set_text(f"dout = {pattern}, batch of {batch_size}, γ = 1.5")
        return (f"dgamma = {_fmt(ex.dgamma)}   dbeta = {_fmt(ex.dbeta)}   "
                f"sum of dx = {_fmt(ex.dx.sum())}   largest |dx| = {_fmt(np.abs(ex.dx).max())}")

    def _set_scale(self, batch_size: int, y_range: tuple) -> None:
        """Map the batch's examples and ``y_range`` of gradients onto the axes; tick them."""
        (x0, x1), (y0, y1) = (-X_PAD_LEFT, batch_size - X_PAD_RIGHT), y_range
        self.to_axes.clear().translate(-x0, -y0).scale(1.0 / (x1 - x0), 1.0 / (y1 - y0))
        x_ticks = (np.arange(batch_size) if batch_size <= MAX_LABELLED
                   else _ticks_within(self.x_locator, x0, x1).astype(int))
        self.x_ticks.set((x_ticks - x0) / (x1 - x0), [str(i) for i in x_ticks])
        y_ticks = _ticks_within(self.y_locator, y0, y1)
        self.y_formatter.axis.set_view_interval(y0, y1)
        self.y_ticks.set((y_ticks - y0) / (y1 - y0), self.y_formatter.format_ticks(y_ticks))


def _fmt(value: float) -> str:
    """Three decimals; anything round-off-sized prints as 0 (never as -0.000 or 3e-16)."""
    return "0 (to round-off)" if abs(value) < 1e-9 else f"{value:.3f}"


def backward_explorer() -> widgets.Explorer:
    """Controls for the upstream-gradient pattern and the batch size."""
    return widgets.Explorer(BackwardScene(), {
        "pattern": widgets.choice(list(PATTERNS), "random", "upstream dout"),
        "batch_size": widgets.int_slider(8, 2, 64, 1, "batch size"),
    }, title="Where the gradient goes")
