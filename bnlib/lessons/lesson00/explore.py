"""Lesson 00's warm-up explorer: standardize a sample whose mean and spread you choose."""
from __future__ import annotations

import numpy as np

from bnlib.course import widgets
from bnlib.normalize import standardize


def standardized_sample(mean: float, scale: float, n: int = 500, seed: int = 0):
    """A sample x ~ N(mean, scale^2) of shape (n, 1) and its standardized copy z."""
    x = mean + scale * np.random.default_rng(seed).standard_normal((n, 1))
    return x, standardize(x)[0]


class StandardizeScene(widgets.Scene):
    """Histograms of a sample N(mean, scale^2) before and after standardization."""

    def build(self) -> None:
        _, axes = self.subplots(1, 2, figsize=(8, 2.8), sharey=True, left=0.09, bottom=0.18,
                                top=0.88, wspace=0.08)
        self.bars, self.titles = [], []
        for ax, limit in zip(axes, (36, 4)):
            # one filled step artist instead of 40 bar patches: several times faster to draw
            self.bars.append(self.live(ax.stairs(np.zeros(40), np.linspace(-1, 1, 41),
                                                 fill=True, color="tab:blue")))
            self.titles.append(self.live(ax.set_title(" ")))
            ax.set_xlabel("value")
            ax.set_xlim(-limit, limit)  # the raw side is wide enough for every slider setting
        axes[0].set_ylabel("count (500 draws)")
        axes[0].set_ylim(0, 45)  # the same 500 draws, shifted and scaled: tallest bin 36

    def update(self, mean: float = 5.0, scale: float = 3.0) -> str:
        x, z = standardized_sample(mean, scale)
        for bars, title, values, name in zip(self.bars, self.titles, (x, z),
                                             ("raw", "standardized")):
            counts, edges = np.histogram(values.ravel(), bins=40)
            bars.set_data(counts, edges)
            # abs() of a round-off-sized mean, so the title never reads "-0.00"
            mean_shown = values.mean() if abs(values.mean()) >= 0.005 else 0.0
            title.set_text(f"{name}: mean {mean_shown:.2f}, std {values.std():.2f}")
        return (f"raw: mean {x.mean():+.3f}, std {x.std():.3f}   ->   "
                f"standardized: mean {abs(z.mean()):.3f}, std {z.std():.3f}")


def standardize_explorer() -> widgets.Explorer:
    """Sliders for the sample's mean and spread."""
    return widgets.Explorer(StandardizeScene(), {
        "mean": widgets.slider(5.0, -10.0, 10.0, 0.5, "mean"),
        "scale": widgets.slider(3.0, 0.5, 6.0, 0.5, "spread"),
    }, title="Standardize a sample")
