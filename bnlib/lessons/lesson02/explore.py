"""Lesson 02's computations and explorer: averaging a stream, the EMA as a filter, tracking.

Pure functions return numbers or arrays; :class:`TrackingScene` draws one figure
and updates it in place; :func:`tracking_explorer` binds a scene to controls.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from bnlib.course import widgets
from bnlib.data import SIGNAL_KINDS, signal
from bnlib.ema import bias_correct, ema, running_mean


def stationary_streams(steps: int, runs: int, *, mean: float = 2.0, noise: float = 1.0,
                       seed: int = 0) -> np.ndarray:
    """``runs`` independent stationary streams N(mean, noise^2), as columns of shape (steps, runs)."""
    return mean + noise * np.random.default_rng(seed).standard_normal((steps, runs))


def many_runs(alpha: float, steps: int, runs: int, *, mean: float = 2.0, noise: float = 1.0,
              y0: float = 0.0, seed: int = 0) -> np.ndarray:
    """EMAs of the :func:`stationary_streams` with the same arguments.

    Returns
    -------
    ndarray of shape (steps, runs)
        Column j is ``ema(stream_j, alpha, y0)``.
    """
    return ema(stationary_streams(steps, runs, mean=mean, noise=noise, seed=seed), alpha, y0=y0)


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


def phase_delay(alpha: float, freq) -> np.ndarray:
    """How many steps the EMA's output lags behind a sinusoid of frequency ``freq``.

    The phase of H(f) = alpha / (1 - (1 - alpha) e^{-2 pi i f}) divided by 2 pi f;
    as f -> 0 it tends to (1 - alpha) / alpha, the centre of mass of the weights.

    Returns
    -------
    ndarray of the same shape as ``freq`` (freq > 0)
    """
    freq = np.asarray(freq, dtype=np.float64)
    h = alpha / (1.0 - (1.0 - alpha) * np.exp(-2j * np.pi * freq))
    return -np.angle(h) / (2 * np.pi * freq)


def measured_delay(alpha: float, freq: float, n: int = 4000) -> float:
    """Run the EMA on a unit cosine and measure how many steps its output lags behind.

    As :func:`measured_gain`: the output's steady state is fitted as
    a cos(wt) + b sin(wt) = r cos(w (t - d)); the delay is d = atan2(b, a) / w.
    """
    t = np.arange(n)
    w = 2 * np.pi * freq
    y = ema(np.cos(w * t), alpha)[n // 2:]
    t = t[n // 2:]
    (a, b) = np.linalg.lstsq(np.stack([np.cos(w * t), np.sin(w * t)], axis=1), y, rcond=None)[0]
    return float(np.arctan2(b, a) / w)


def window_conventions(alpha: float) -> dict:
    """The usual ways to say "how many values" an EMA with weight ``alpha`` averages.

    Returns
    -------
    dict with
        ``time_constant``: 1 / alpha; the newest 1/alpha values carry about 63% of the weight.
        ``share``: the weight the newest round(1/alpha) values carry, 1 - (1 - alpha)^(1/alpha).
        ``span``: N = 2 / alpha - 1, the window whose plain mean has the EMA's noise
        (variance sigma^2 / N = alpha / (2 - alpha) sigma^2) and the same mean age.
        ``centre_of_mass``: (1 - alpha) / alpha, the mean age of the weights in steps
        (a plain N-value mean's is (N - 1) / 2).
    """
    window = int(round(1.0 / alpha))
    return {"time_constant": 1.0 / alpha, "share": 1.0 - (1.0 - alpha) ** window,
            "span": 2.0 / alpha - 1.0, "centre_of_mass": (1.0 - alpha) / alpha}


@lru_cache(maxsize=512)
def lag_and_noise(kind: str, alpha: float, n: int = 500, noise: float = 1.0, seed: int = 0):
    """Split the bias-corrected EMA's tracking error into a lag part and a noise part.

    The EMA is linear, so EMA(truth + noise) = EMA(truth) + EMA(noise): the first
    term's distance from the truth is the lag error (what smoothing costs on a
    moving mean, with no noise at all), the second is the noise let through.

    Returns
    -------
    total, lag, noise : float
        RMSE against the truth of the EMA, of the EMA of the truth alone, and RMSE
        of the EMA of the noise alone (about ``noise * sqrt(alpha / (2 - alpha))``).
    """
    x, truth = signal(kind, n, noise=noise, seed=seed)
    smooth = lambda v: bias_correct(ema(v, alpha), alpha)  # noqa: E731
    return (rmse(smooth(x), truth), rmse(smooth(truth), truth),
            rmse(smooth(x - truth), np.zeros(n)))


def best_alpha(kind: str, alphas, seed: int = 0) -> float:
    """The alpha of ``alphas`` with the smallest total tracking error on ``kind`` (seed ``seed``)."""
    totals = [lag_and_noise(kind, float(a), seed=seed)[0] for a in alphas]
    return float(alphas[int(np.argmin(totals))])


TRADEOFF_ALPHAS = tuple(float(a) for a in np.round(np.geomspace(0.01, 0.8, 25), 4))


def lag_noise_tradeoff(seeds, kind: str = "sinusoid", alphas=TRADEOFF_ALPHAS) -> dict:
    """The lag-noise trade-off on several noise draws (seeds).

    Returns
    -------
    dict with
        ``best``: ndarray of shape (len(seeds),), the best alpha on each seed;
        ``lag_falls``: True if the lag error falls as alpha grows, on every seed;
        ``noise_grows``: True if the noise error grows with alpha, on every seed.
    """
    best, lag_falls, noise_grows = [], True, True
    for seed in seeds:
        parts = np.array([lag_and_noise(kind, a, seed=seed) for a in alphas])
        best.append(alphas[int(np.argmin(parts[:, 0]))])
        lag_falls &= bool(np.all(np.diff(parts[:, 1]) < 0))
        noise_grows &= bool(np.all(np.diff(parts[:, 2]) > 0))
    return {"best": np.array(best), "lag_falls": lag_falls, "noise_grows": noise_grows}


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
        _, ax = self.subplots(figsize=(8, 3.4), bottom=0.14)
        self.lines = [
            self.live(ax.plot([], [], ".", ms=2, color="0.7", label="observations")[0]),
            self.live(ax.plot([], [], "k--", lw=1.2, label="true mean")[0]),
            self.live(ax.plot([], [], color="tab:blue", lw=1.6, label="running mean")[0]),
            self.live(ax.plot([], [], color="tab:red", lw=1.6, label="EMA")[0])]
        self.title = self.live(ax.set_title(" "))
        self.legend = self.live(ax.legend(fontsize=8, loc="upper left"))
        # x: steps 1..500 with the 5% margins autoscaling gave them
        ax.set(xlabel="step t", ylabel="value", xlim=(-24, 525), ylim=TRACKING_YLIM)

    def update(self, kind: str = "step", alpha: float = 0.05) -> str:
        x, truth, mean_1t, smoothed, (err_mean, err_ema) = tracking(kind, alpha)
        t = np.arange(1, len(x) + 1)
        for line, values in zip(self.lines, (x, truth, mean_1t, smoothed)):
            line.set_data(t, values)
        self.title.set_text(f"{kind} signal: who tracks the mean?")
        labels = self.legend.get_texts()
        labels[2].set_text(f"running mean (RMSE {err_mean:.2f})")
        labels[3].set_text(f"EMA α={alpha:g} (RMSE {err_ema:.2f})")
        _, lag, noise = lag_and_noise(kind, alpha)
        return (f"{kind}, alpha {alpha:g} (time constant {1 / alpha:.0f} steps, mean age "
                f"{(1 - alpha) / alpha:.0f}): tracking error (RMSE) running mean {err_mean:.3f}, "
                f"EMA {err_ema:.3f} = lag {lag:.3f} and noise {noise:.3f}")


def tracking_explorer() -> widgets.Explorer:
    """A drop-down for the signal and a slider for alpha."""
    return widgets.Explorer(TrackingScene(), {
        "kind": widgets.choice(list(SIGNAL_KINDS), "step", "signal"),
        "alpha": widgets.slider(0.05, 0.005, 0.5, 0.005, "alpha", ".3f"),
    }, title="Running mean vs exponential moving average")
