"""Lesson 02's computations and explorer: averaging a stream, the EMA as a filter, tracking.

Pure functions return numbers or arrays; :class:`TrackingScene` draws one figure
and updates it in place; :func:`tracking_view` renders a new one and returns
``(fig, text)``; :func:`tracking_explorer` binds a scene to controls.
"""
from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np

from bnlib.course import widgets
from bnlib.data import SIGNAL_KINDS, signal
from bnlib.ema import bias_correct, ema, running_mean


def many_runs(alpha: float, steps: int, runs: int, *, mean: float = 2.0, noise: float = 1.0,
              y0: float = 0.0, seed: int = 0) -> np.ndarray:
    """EMAs of ``runs`` independent stationary streams N(mean, noise^2).

    Returns
    -------
    ndarray of shape (steps, runs)
        Column j is ``ema(stream_j, alpha, y0)``.
    """
    x = mean + noise * np.random.default_rng(seed).standard_normal((steps, runs))
    return ema(x, alpha, y0=y0)


def frequency_response(alpha: float, freq) -> np.ndarray:
    """Gain |H(f)| of the EMA at frequency ``freq`` (cycles per step, 0 to 0.5).

    From y_t = (1 - alpha) y_{t-1} + alpha x_t: H(f) = alpha / (1 - (1 - alpha) e^{-2 pi i f}).

    Returns
    -------
    ndarray of the same shape as ``freq``
    """
    z = np.exp(-2j * np.pi * np.asarray(freq, dtype=np.float64))
    return np.abs(alpha / (1.0 - (1.0 - alpha) * z))


def measured_gain(alpha: float, freq: float, n: int = 4000) -> float:
    """Feed a unit cosine of frequency ``freq`` through the EMA and measure the output amplitude.

    The first half of the output (the transient) is dropped; the amplitude is
    found by least squares on a cosine and a sine of the same frequency.
    """
    t = np.arange(n)
    y = ema(np.cos(2 * np.pi * freq * t), alpha)[n // 2:]
    t = t[n // 2:]
    basis = np.stack([np.cos(2 * np.pi * freq * t), np.sin(2 * np.pi * freq * t)], axis=1)
    coef = np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(np.hypot(*coef))


def steps_to_reach(y, start: float, end: float, fraction: float) -> int:
    """First index (0-based) at which ``y`` has covered ``fraction`` of the way from start to end."""
    progress = (np.asarray(y) - start) / (end - start)
    return int(np.argmax(progress >= fraction))


def rmse(a, b) -> float:
    """Root-mean-square difference of two arrays of the same shape."""
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@lru_cache(maxsize=256)
def tracking(kind: str, alpha: float, n: int = 500, noise: float = 1.0, seed: int = 0):
    """Running mean vs bias-corrected EMA on one of :data:`bnlib.data.SIGNAL_KINDS`.

    Returns
    -------
    x, truth, mean_1t, smoothed : ndarrays of shape (n,)
        The noisy stream, its true mean, the 1/t running mean, the corrected EMA.
    errors : tuple of float
        RMSE against the truth of the running mean and of the EMA.
    """
    x, truth = signal(kind, n, noise=noise, seed=seed)
    mean_1t = running_mean(x)
    smoothed = bias_correct(ema(x, alpha), alpha)
    return x, truth, mean_1t, smoothed, (rmse(mean_1t, truth), rmse(smoothed, truth))


# Fixed limits: they hold every stream of every kind (the same noise, seed 0, lies between
# -6.6 and 6.8) and leave the top rows to the legend; a limit change would redraw everything.
TRACKING_YLIM = (-7.5, 10.5)


class TrackingScene(widgets.Scene):
    """A stream, its true mean, the running mean and the bias-corrected EMA, on fixed axes."""

    def build(self) -> None:
        self.fig, ax = plt.subplots(figsize=(8, 3.4))
        self.lines = [
            self.live(ax.plot([], [], ".", ms=2, color="0.7", label="observations")[0]),
            self.live(ax.plot([], [], "k--", lw=1.2, label="true mean")[0]),
            self.live(ax.plot([], [], color="tab:blue", lw=1.6, label="running mean")[0]),
            self.live(ax.plot([], [], color="tab:red", lw=1.6, label="EMA")[0])]
        self.title = self.live(ax.set_title(" "))
        self.legend = self.live(ax.legend(fontsize=8, loc="upper left"))
        # x: steps 1..500 with the 5% margins autoscaling gave them
        ax.set(xlabel="step t", ylabel="value", xlim=(-24, 525), ylim=TRACKING_YLIM)
        self.fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9)

    def update(self, kind: str = "step", alpha: float = 0.05) -> str:
        x, truth, mean_1t, smoothed, (err_mean, err_ema) = tracking(kind, alpha)
        t = np.arange(1, len(x) + 1)
        for line, values in zip(self.lines, (x, truth, mean_1t, smoothed)):
            line.set_data(t, values)
        self.title.set_text(f"{kind} signal: who tracks the mean?")
        labels = self.legend.get_texts()
        labels[2].set_text(f"running mean (RMSE {err_mean:.2f})")
        labels[3].set_text(f"EMA α={alpha:g} (RMSE {err_ema:.2f})")
        return (f"{kind}, alpha {alpha:g} (window ~{1 / alpha:.0f} steps): tracking error (RMSE) "
                f"running mean {err_mean:.3f}, EMA {err_ema:.3f}")


def tracking_view(kind: str = "step", alpha: float = 0.05):
    """Plot a stream, its true mean, the running mean and the EMA; report both errors."""
    return TrackingScene().render(kind=kind, alpha=alpha)


def tracking_explorer() -> widgets.Explorer:
    """A drop-down for the signal and a slider for alpha."""
    return widgets.Explorer(TrackingScene(), {
        "kind": widgets.choice(list(SIGNAL_KINDS), "step", "signal"),
        "alpha": widgets.slider(0.05, 0.005, 0.5, 0.005, "alpha", ".3f"),
    }, title="Running mean vs exponential moving average")
