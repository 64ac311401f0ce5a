"""Plotting helpers the lessons share.

Every helper takes arrays (and optionally an ``ax``), returns the figure,
never trains anything and never calls ``plt.show()``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["use_course_style", "images_and_histogram", "curves", "smooth", "STYLE"]

# axes.axisbelow: the grid under every artist, so a scene's live artists, blitted on top of
# the static background, give the same pixels as a full draw (see bnlib.course.widgets.Scene)
STYLE = {"figure.dpi": 80, "savefig.dpi": 80, "axes.grid": True, "grid.alpha": 0.3,
         "axes.axisbelow": True, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 10}


def use_course_style() -> None:
    """Apply the course's plot settings (fixed dpi, light grid)."""
    plt.rcParams.update(STYLE)


def _figure_and_axes(ax, figsize=(5, 3.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def images_and_histogram(images: np.ndarray, title: str = "", picks=(0, 4), bins: int = 60):
    """Two example images in gray and a histogram of every value in the batch.

    Parameters
    ----------
    images : ndarray of shape (N, H, W) or (N, H, W, 1)
    title : str
        Figure title.
    picks : tuple of int
        Indices of the images shown.
    bins : int
        Histogram bins.
    """
    images = np.asarray(images)
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(4 * (len(picks) + 1), 3.4))
    for ax, i in zip(axes, picks):
        ax.imshow(images[i].squeeze(), cmap="gray")
        ax.set_title(f"image {i}")
        ax.axis("off")
    axes[-1].hist(images.ravel(), bins=bins, color="tab:blue")
    axes[-1].set(title="all values", xlabel="value", ylabel="count")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves(x, series: dict, *, xlabel: str = "", ylabel: str = "", title: str = "",
           ax=None, logy: bool = False):
    """Several named curves against the same x."""
    fig, ax = _figure_and_axes(ax)
    for label, y in series.items():
        ax.plot(x, y, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return fig


def smooth(values, window: int = 20) -> np.ndarray:
    """Trailing moving average (shorter window at the start), same length as ``values``."""
    values = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(values, 0, 0.0))
    n = np.arange(1, len(values) + 1)
    lo = np.maximum(n - window, 0)
    return (c[n] - c[lo]) / (n - lo)
