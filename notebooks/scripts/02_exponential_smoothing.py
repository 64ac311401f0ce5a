# %% [markdown]
# # 02 · Exponentially smoothed averages
#
# At prediction time a batch-normalized network needs a mean and a variance
# for every unit, but it has no batch to compute them from. It uses averages
# kept during training, and the way it keeps them is a one-line smoother with a
# long history in statistics and signal processing. This lesson builds that
# smoother from the most ordinary thing there is: the average of some numbers.
#
# **After this lesson you will be able to**
# - compute a mean from a stream in constant memory, and derive the 1/t update;
# - write the exponential moving average (EMA), unroll it into weights
#   $\alpha(1-\alpha)^\tau$, and say why it is called exponential;
# - show that it estimates $E[X]$ for a stationary stream, and at what price;
# - remove the start-up bias of an EMA that starts at 0, as Adam does;
# - read the EMA as a low-pass filter that delays what it smooths, and say how
#   many values it "averages" in each of the three usual senses;
# - explain why it tracks a changing mean where the plain mean lags, and map it
#   to the `momentum` of batch-norm layers in Keras, CS231n and PyTorch.

# %%
import numpy as np

from bnlib.course import checks, plots, seeds, widgets
from bnlib.lessons.lesson02 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true
from bnlib.ema import (bias_correct, convert_momentum, effective_window, ema, ema_update,
                       ema_weights, running_mean)

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The batch sample mean, and why we might not want it
#
# The mean of $N$ observations is the formula everyone knows:
#
# $$\bar X_N = \frac{1}{N}\sum_{n=1}^{N} X_n .$$
#
# Written this way it needs all $N$ values at hand. That is fine for a few
# thousand numbers and hopeless for a stream that does not fit in memory, or
# never ends: in training, a fresh mini-batch arrives at every step. Can we
# keep the mean up to date while looking at each value once and then
# forgetting it?
#
# ## The streaming mean: the 1/t update
#
# Split off the newest term. The first $t-1$ values sum to $(t-1)\bar X_{t-1}$, so
#
# $$\bar X_t = \frac{1}{t}\Big(\sum_{n=1}^{t-1} X_n + X_t\Big)
#           = \frac{1}{t}\Big((t-1)\,\bar X_{t-1} + X_t\Big)
#           = \Big(1-\frac{1}{t}\Big)\bar X_{t-1} + \frac{1}{t}\,X_t .$$
#
# Call the running average $Y_t$. The update $Y_t = (1-\tfrac1t)Y_{t-1} +
# \tfrac1t X_t$ keeps only two numbers, $Y$ and $t$: a little of the old
# average, a little of the new value. Here it is on a stream of 20,000 values,
# checked against `np.mean` of everything seen so far **at every step**.

# %%
stream = rng.normal(loc=3.0, scale=2.0, size=20_000)
y, means = 0.0, np.empty(len(stream))
for t, x_t in enumerate(stream, start=1):
    y = (1 - 1 / t) * y + (1 / t) * x_t      # the 1/t update: memory is y and t
    means[t - 1] = y
batch = np.array([np.mean(stream[:t]) for t in range(1, len(stream) + 1)])
assert_close("max |streaming - np.mean(first t)| over all t", means, batch, 3e-13)
assert_close("max |by hand - bnlib.ema.running_mean|", means, running_mean(stream), 5e-15)
print(f"final mean {means[-1]:.4f}; the batch version held {stream.nbytes:,} bytes")

# %% [markdown]
# Both give the same numbers up to round-off. Notice the weight $1/t$ on the
# newest value: after 20,000 values, a new one moves the mean by only 1/20,000
# of its surprise. That is right if every value ever seen is equally relevant.
#
# ## Constant α: the exponential moving average
#
# Rename the weight $\alpha_t = 1/t$ and ask: what if it did **not** shrink?
# Fix $0 < \alpha < 1$:
#
# $$Y_t = (1-\alpha)\,Y_{t-1} + \alpha\,X_t .$$
#
# Each new value now gets the same share $\alpha$ of the average when it
# arrives, however long the stream has run ($\alpha < 1$, so some of the past
# survives; $\alpha = 1$ would keep only the newest value). Substitute the update
# into itself again and again:
#
# $$Y_t = \alpha X_t + (1-\alpha)\big(\alpha X_{t-1} + (1-\alpha)Y_{t-2}\big) = \dots
#       = \sum_{\tau=0}^{t-1} \alpha(1-\alpha)^{\tau}\, X_{t-\tau} \;+\; (1-\alpha)^t\, Y_0 .$$
#
# A value $\tau$ steps old carries weight $\alpha(1-\alpha)^\tau$. Let us check
# the unrolled sum against the update on a short stream ($Y_0 = 0$, so the
# first term drops out).

# %%
alpha, short = 0.1, stream[:50]
y = 0.0
for x_t in short:
    y = (1 - alpha) * y + alpha * x_t
weights = ema_weights(alpha, len(short))      # for ages 0, 1, ..., 49
unrolled = np.sum(weights * short[::-1])            # newest value gets weights[0]
assert_close("|update - unrolled sum|", y, unrolled, 1e-14)
assert_close("|by hand - bnlib.ema.ema|", y, ema(short, alpha)[-1], 1e-15)
print(f"Y_50 = {y:.4f}; the 50 weights sum to {weights.sum():.4f} = 1 - 0.9^50")
assert np.isclose(weights.sum(), 1 - 0.9 ** 50)

# %% [markdown]
# ### Why "exponential"
#
# Every step back in time multiplies the weight by the same factor $1-\alpha$,
# so the weight is $\alpha\,e^{\tau \ln(1-\alpha)}$: an exponential decay in the
# age $\tau$, a straight line on a log scale. The weights of the last $t$ values
# sum to a geometric series, $\alpha\sum_{\tau<t}(1-\alpha)^\tau = 1-(1-\alpha)^t$,
# which approaches 1: the missing part is exactly the weight still sitting on $Y_0$.

# %%
ages = np.arange(60)
alphas = (0.02, 0.1, 0.3)
fig = plots.curves(ages, {f"α = {a}": ema_weights(a, 60) for a in alphas}, logy=True,
                   xlabel="age τ of the value (steps ago)", ylabel="weight α(1-α)^τ",
                   title="EMA weights decay exponentially with age")
for a in alphas:
    w = ema_weights(a, 60)
    print(f"alpha {a}: ratio of neighbours {w[1] / w[0]:.3f}, sum of 60 weights {w.sum():.4f}")
    assert np.allclose(w[1:] / w[:-1], 1 - a) and np.isclose(w.sum(), 1 - (1 - a) ** 60)

# %% [markdown]
# ## It still estimates the mean
#
# Suppose the stream is **stationary**: every $X_t$ has the same expectation
# $E[X]$. Take expectations on both sides of the update:
#
# $$E[Y_t] = (1-\alpha)\,E[Y_{t-1}] + \alpha\,E[X].$$
#
# If $E[Y_{t-1}] = E[X]$, then $E[Y_t] = (1-\alpha)E[X] + \alpha E[X] = E[X]$:
# started at the right value, the EMA stays right on average forever. From any
# start, the unrolled sum gives $E[Y_t] = (1-\alpha)^t Y_0 + (1-(1-\alpha)^t)E[X]$,
# which forgets $Y_0$ geometrically.
#
# We check it on 4,000 independent streams with $E[X] = 2$ and noise of
# standard deviation 1, started at $Y_0 = 2$: average $Y_t$ over the runs.
# One more number comes out: the EMA's **variance** does not shrink to 0 the
# way the running mean's $\sigma^2/t$ does. Forgetting the past has a price:
# it settles at $\frac{\alpha}{2-\alpha}\sigma^2$ (sum the squared weights).

# %%
runs = explore.many_runs(alpha=0.1, steps=200, runs=4000, y0=2.0)
drift_of_mean = np.abs(runs.mean(axis=1) - 2.0).max()
print(f"largest |average of Y_t over runs - 2| for t = 1..200: {drift_of_mean:.3f} "
      f"(standard error {np.sqrt(0.1 / 1.9 / 4000):.3f})")
assert drift_of_mean < 5 * np.sqrt(0.1 / 1.9 / 4000)
print(f"variance of Y_200 across runs {runs[-1].var():.4f}, "
      f"alpha / (2 - alpha) = {0.1 / 1.9:.4f}")
assert abs(runs[-1].var() / (0.1 / 1.9) - 1) < 0.1

# %% [markdown]
# ## The start-up bias, and how to correct it
#
# Optimizers such as Adam start their averages at $Y_0 = 0$, and so does a
# batch-norm layer's moving mean. Then
# $E[Y_t] = (1-(1-\alpha)^t)\,E[X]$: the average is pulled toward 0 until
# $(1-\alpha)^t$ dies out. Since the missing factor is known, divide it out:
#
# $$\hat Y_t = \frac{Y_t}{1-(1-\alpha)^t}.$$
#
# This is the bias correction of the Adam optimizer. At $t=1$ it gives
# $\hat Y_1 = X_1$ exactly, and it fades to a division by 1 as $t$ grows. In
# the plot the corrected average (orange) lies on $E[X] = 2$ (grey dashes)
# from the first step, while the uncorrected one follows the dotted theory
# curve up from 0.

# %%
start = explore.many_runs(alpha=0.05, steps=100, runs=4000, y0=0.0)
corrected = bias_correct(start, alpha=0.05)
steps = np.arange(1, 101)
fig = plots.curves(steps, {"EMA from 0 (average of runs)": start.mean(axis=1),
                           "bias-corrected": corrected.mean(axis=1),
                           "theory (1-(1-α)^t)·E[X]": (1 - 0.95 ** steps) * 2.0,
                           "E[X]": np.full(100, 2.0)},
                   xlabel="step t", ylabel="average over 4,000 runs",
                   title="Start-up bias of an EMA at α = 0.05")
ax = fig.axes[0]
ax.lines[1].set(linewidth=2.5, zorder=3)                        # corrected, on top
ax.lines[2].set(linestyle=":", linewidth=3, zorder=4)          # theory, drawn over the runs
ax.lines[3].set(color="0.5", linestyle="--", linewidth=1, zorder=1)  # E[X], under "corrected"
ax.legend()   # rebuilt after the restyling, so each entry shows its line as drawn
print(f"at t = 10: from 0 {start[9].mean():.3f} (theory {(1 - 0.95 ** 10) * 2:.3f}), "
      f"corrected {corrected[9].mean():.3f}")
assert abs(start[9].mean() - (1 - 0.95 ** 10) * 2) < 0.02 and abs(corrected[9].mean() - 2) < 0.02

# %% [markdown]
# ## How many values does an EMA average?
#
# "An EMA with $\alpha = 0.1$ is a mean of the last 10 values" is said often
# and is only true in one of three senses, which give different numbers:
#
# - **time constant** $1/\alpha$: the newest $1/\alpha$ values carry
#   $1-(1-\alpha)^{1/\alpha} \to 1 - 1/e \approx 63\%$ of the weight, and
#   after a sudden jump the EMA has covered 63% of it after about $1/\alpha$ steps;
# - **centre of mass** $(1-\alpha)/\alpha$: the mean age of the weights,
#   $\sum_\tau \tau\,\alpha(1-\alpha)^\tau$. A plain mean of the last $N$
#   values has mean age $(N-1)/2$;
# - **span** $N = 2/\alpha - 1$ (that is, $\alpha = 2/(N+1)$): the plain
#   $N$-value mean with the same noise, since its variance $\sigma^2/N$ equals
#   the EMA's $\frac{\alpha}{2-\alpha}\sigma^2$; it also has the same mean age.
#
# So $\alpha = 0.1$ has a time constant of 10 steps, but the noise and the lag
# of a **19**-value mean: its weights' mean age is 9 steps, a 10-value mean's
# is 4.5.

# %%
for a in (0.2, 0.1, 0.05, 0.01):
    c = explore.window_conventions(a)
    window = int(effective_window(a))
    jump = ema(np.ones(1000), a)              # from 0 to a constant 1 at t = 1
    reach = explore.steps_to_reach(jump, 0.0, 1.0, 1 - 1 / np.e) + 1
    ages = np.arange(5000)
    age = np.sum(ages * ema_weights(a, 5000))  # numerically: the weights' mean age
    print(f"alpha {a:<4}: time constant {window:3d} (its values carry {c['share']:.1%}, "
          f"63% of a jump after {reach:3d} steps); mean age {age:5.1f}; span {c['span']:3.0f}")
    assert 0.63 < c["share"] < 0.68 and abs(reach - window) <= 1
    assert abs(age - c["centre_of_mass"]) < 1e-6 and abs((c["span"] - 1) / 2 - age) < 1e-6

# %% [markdown]
# The noise is measured too, on the 4,000 stationary streams of the previous
# section ($\sigma = 1$, $\alpha = 0.1$): the EMA's variance at step 200 against
# the variance of the plain mean of the last 10 and of the last 19 values.

# %%
streams = explore.stationary_streams(200, 4000, mean=2.0, noise=1.0, seed=0)
var_ema = runs[-1].var()
var_10, var_19 = (streams[-n:].mean(axis=0).var() for n in (10, 19))
print(f"variance: EMA alpha 0.1 {var_ema:.3f}; mean of last 10 {var_10:.3f}; "
      f"mean of last 19 {var_19:.3f} (theory 1/19 = {1 / 19:.3f})")
assert abs(var_ema / var_19 - 1) < 0.1 and var_10 > 1.7 * var_ema

# %% [markdown]
# ## The low-pass filter view
#
# To a signal-processing engineer, the EMA is a first-order recursive
# **low-pass filter** (a "single-pole" filter). Feed it a sinusoid of
# frequency $f$ (cycles per step) and a sinusoid of the same frequency comes
# out, multiplied by the gain
#
# $$|H(f)| = \left|\frac{\alpha}{1-(1-\alpha)e^{-2\pi i f}}\right|.$$
#
# At $f=0$ (a constant: the mean) the gain is exactly 1, the filter version of
# "it estimates $E[X]$". At the fastest possible wiggle, $f = 1/2$ (up, down,
# up...), it is $\alpha/(2-\alpha)$. Slow changes pass, fast noise is damped;
# smaller $\alpha$ damps more and lets through only slower changes.

# %%
freqs = np.linspace(0, 0.5, 201)
fig = plots.curves(freqs, {f"α = {a}": explore.frequency_response(a, freqs)
                           for a in alphas}, logy=True, xlabel="frequency (cycles per step)",
                   ylabel="gain |H(f)|", title="The EMA is a low-pass filter")
for a in alphas:
    gain_0, gain_half = explore.frequency_response(a, [0.0, 0.5])
    measured = explore.measured_gain(a, 0.05)
    print(f"alpha {a}: gain at f=0 {gain_0:.3f}, at f=1/2 {gain_half:.4f} "
          f"(alpha/(2-alpha) = {a / (2 - a):.4f}); at f=0.05 measured {measured:.4f}")
    assert np.isclose(gain_0, 1) and np.isclose(gain_half, a / (2 - a))
    assert np.isclose(measured, explore.frequency_response(a, 0.05), rtol=1e-6)
gains = explore.frequency_response(np.array(alphas), 0.05)
assert np.all(np.diff(gains) > 0), "smaller alpha should damp a wiggle more"

# %% [markdown]
# The measured gains come from actually running `ema` on a cosine, so the
# formula is checked, not just plotted. But gain is only half of what a filter
# does to a wave: it also **delays** it. The phase of $H(f)$ divided by
# $2\pi f$ is the delay in steps; for slow waves it tends to $(1-\alpha)/\alpha$,
# the centre of mass of the weights. Take a slow sine wave, period 125 steps
# ($f = 0.008$), at $\alpha = 0.2$:

# %%
f_slow = 1 / 125
for a in (0.2, 0.1):
    gain, delay = explore.frequency_response(a, f_slow), explore.phase_delay(a, f_slow)
    measured = explore.measured_delay(a, f_slow)
    print(f"alpha {a}: gain {gain:.3f}, delay {delay:.2f} steps "
          f"((1 - alpha) / alpha = {(1 - a) / a:.0f}); measured delay {measured:.2f}")
    assert abs(measured - delay) < 1e-3 and 0.9 * (1 - a) / a < delay < (1 - a) / a

# %% [markdown]
# The slow wave keeps 98% of its amplitude at $\alpha = 0.2$ but arrives about
# 4 steps late (8.4 steps at $\alpha = 0.1$, approaching 9 only for slower
# waves). On a noisy wave (amplitude 3, noise
# of standard deviation 1) the EMA's error therefore has two parts, which
# linearity separates exactly: EMA(wave + noise) = EMA(wave) + EMA(noise).
# The **lag** error is the EMA of the clean wave against the wave; the
# **noise** error is the EMA of the noise alone, about
# $\sqrt{\alpha/(2-\alpha)}$ (0.333 at $\alpha = 0.2$).

# %%
x, truth, _, smoothed, _ = explore.tracking("sinusoid", 0.2)
raw_error = explore.rmse(x, truth)
for a in (0.2, 0.1):
    total, lag, noise = explore.lag_and_noise("sinusoid", a)
    print(f"alpha {a}: EMA RMSE {total:.3f} = lag {lag:.3f} and noise {noise:.3f} "
          f"(noise theory {np.sqrt(a / (2 - a)):.3f}); raw observations {raw_error:.3f}")
    assert abs(noise / np.sqrt(a / (2 - a)) - 1) < 0.1
total_02, lag_02, noise_02 = explore.lag_and_noise("sinusoid", 0.2)
lag_01, noise_01 = explore.lag_and_noise("sinusoid", 0.1)[1:]
assert total_02 < 0.6 * raw_error
assert_true("halving alpha doubles the lag error and cuts the noise by a third",
            lag_01 > 1.8 * lag_02 and noise_01 < 0.75 * noise_02,
            f"lag {lag_02:.3f} -> {lag_01:.3f}, noise {noise_02:.3f} -> {noise_01:.3f}")

# %% [markdown]
# Over a range of $\alpha$ the two parts pull in opposite directions, so the
# total has a best $\alpha$ in between. The noise is random, so the best value
# is found on three draws of it (the lesson's seeds):

# %%
alphas_grid = np.array(explore.TRADEOFF_ALPHAS)
parts = np.array([explore.lag_and_noise("sinusoid", a) for a in alphas_grid])
fig = plots.curves(alphas_grid, {"total": parts[:, 0], "lag": parts[:, 1],
                                 "noise": parts[:, 2],
                                 "noise theory √(α/(2-α))": np.sqrt(alphas_grid / (2 - alphas_grid))},
                   xlabel="α", ylabel="RMSE from the true wave",
                   title="Lag against noise on the slow sine wave (seed 0)")
fig.axes[0].set_xscale("log")
fig.axes[0].lines[3].set(linestyle=":", color="0.3")
fig.axes[0].legend()
tradeoff = explore.lag_noise_tradeoff(seeds.LESSON_SEEDS)
print(f"best alpha on the sine wave: {seeds.spread(tradeoff['best'])}")
assert tradeoff["lag_falls"] and tradeoff["noise_grows"]
assert np.all((0.2 < tradeoff["best"]) & (tradeoff["best"] < 0.4))

# %% [markdown]
# ## When the mean moves: tracking non-stationary data
#
# Everything so far assumed a stationary stream, where the plain running mean
# is the best estimate: it uses all the data equally. When the distribution
# **changes** over time, old values describe a world that no longer exists, and
# weighting them as much as new ones is exactly wrong. The EMA trusts recent
# values more and forgets old ones geometrically, so it follows the change.
#
# Four streams from `bnlib.data.signal`, each with noise of standard deviation
# 1 around a true mean that is constant, jumps halfway, drifts slowly, or
# oscillates. Both estimators below see the same values; we score each by its
# root-mean-square distance from the true mean over 500 steps (the EMA is
# bias-corrected, α = 0.1).

# %%
errors = {kind: explore.tracking(kind, 0.1)[-1] for kind in
          ("stationary", "step", "drift", "sinusoid")}
for kind, (err_mean, err_ema) in errors.items():
    print(f"{kind:<10}: running mean {err_mean:.3f}, EMA {err_ema:.3f}")
assert errors["stationary"][0] < errors["stationary"][1]
assert all(errors[k][1] < 0.5 * errors[k][0] for k in ("step", "drift", "sinusoid"))

# %% [markdown]
# The running mean wins only when nothing changes; on the three moving
# signals the EMA's error is less than half of the running mean's. Choosing
# $\alpha$ is the lag-noise trade-off measured above: a large $\alpha$ follows
# changes quickly but keeps more noise; a small one is smooth but lags. The
# readout splits the EMA's error into its lag and noise parts: watch them
# trade places as you move $\alpha$, and see the best $\alpha$ move with the
# signal (slower for the drift, faster for the sine wave).

# %% tags=["nbval-ignore-output"]
explore.tracking_explorer()

# %% [markdown]
# At the default setting (the step, α = 0.05), checked: after the jump from 0
# to 4 at step 250, the EMA covers 63% of it in about $1/\alpha = 20$ steps,
# while the running mean, weighed down by 250 old values, has only reached about
# 2, halfway, by the end of the stream.

# %%
print(widgets.readout(explore.TrackingScene, kind="step", alpha=0.05))
_, truth, mean_1t, smoothed, _ = explore.tracking("step", 0.05)
lag = explore.steps_to_reach(smoothed[250:], 0.0, 4.0, 1 - 1 / np.e)
print(f"EMA covers 63% of the jump {lag} steps after it; running mean at the end "
      f"{mean_1t[-1]:.2f}")
assert 10 <= lag <= 30 and abs(mean_1t[-1] - 2.0) < 0.2

# %% [markdown]
# ## The link to batch normalization
#
# During training a batch-norm layer sees one mini-batch mean and variance per
# step: a noisy, slowly **moving** stream, because the weights feeding the
# layer keep changing. It keeps an EMA of each, and uses them at prediction
# time. Keras writes the update with a `momentum` $m$ that weights the **old**
# value:
#
# $$\text{moving\_mean} \leftarrow m\cdot\text{moving\_mean} + (1-m)\cdot\mu_{\text{batch}},$$
#
# which is our EMA with $\alpha = 1-m$. The Keras default $m = 0.99$ means
# $\alpha = 0.01$: a time constant of 100 batches (they carry 63% of the
# weight), and the noise and mean age of a plain mean over the last 199
# batches (the span $2/\alpha - 1$). CS231n's assignments use the same
# convention with a default of $m = 0.9$: $\alpha = 0.1$, a time constant of
# 10 batches and a span of 19. PyTorch writes it the other way round: its
# `momentum` (default 0.1) is the weight on the **new** value, i.e. $\alpha$
# itself, so PyTorch's default 0.1 is the same smoother as CS231n's 0.9. PyTorch's
# `momentum=None` switches to the plain cumulative average, our 1/t update.
# `bnlib.ema.convert_momentum` translates between the conventions.

# %%
for value, source, target in ((0.99, "keras", "pytorch"), (0.9, "cs231n", "pytorch"),
                              (0.1, "pytorch", "keras")):
    converted = convert_momentum(value, source=source, target=target)
    print(f"{source} momentum {value} = {target} momentum {converted:.2f}")
assert np.isclose(convert_momentum(0.99, source="keras", target="pytorch"), 0.01)
assert np.isclose(convert_momentum(0.9, source="cs231n", target="pytorch"), 0.1)
assert np.isclose(convert_momentum(0.1, source="pytorch", target="keras"), 0.9)
for name, m in (("Keras default", 0.99), ("CS231n default", 0.9)):
    c = explore.window_conventions(1 - m)
    print(f"{name} momentum {m}: alpha {1 - m:.2f}, time constant {c['time_constant']:.0f} "
          f"batches, span {c['span']:.0f} batches")

# %% [markdown]
# A simulated layer: 1,000 training steps whose batch means scatter around 3.
# The Keras-style update, one step at a time, is exactly our EMA with
# $\alpha = 0.01$. Keras starts `moving_mean` at 0 and does **not** correct the
# start-up bias, so the early estimates are far too small: after 100 steps the
# moving mean has covered only $1-0.99^{100} \approx 63\%$ of the way, and it
# takes 459 steps before the leftover start-up share $0.99^t$ drops below 1%.
# Lesson 03 plots this warm-up for momenta 0.9, 0.99 and 0.999 and explains
# why a layer evaluated before it ends normalizes with the wrong statistics.

# %%
batch_means = 3.0 + 0.3 * rng.standard_normal(1000)
moving_mean, history = 0.0, []
for mu_batch in batch_means:
    moving_mean = ema_update(moving_mean, mu_batch, momentum=0.99)
    history.append(moving_mean)
assert_close("|Keras-style updates - ema(alpha=0.01)|", history,
             ema(batch_means, 0.01), 1e-13)
print(f"after 100 steps {history[99]:.2f} (expected about {3 * (1 - 0.99 ** 100):.2f}); "
      f"after 1000 steps {history[-1]:.2f}")
within_1_percent = int(np.ceil(np.log(0.01) / np.log(0.99)))
print(f"steps until 0.99^t < 1%: {within_1_percent}")
assert 0.99 ** within_1_percent < 0.01 <= 0.99 ** (within_1_percent - 1) and within_1_percent == 459
assert abs(history[99] - 3 * (1 - 0.99 ** 100)) < 0.1 and abs(history[-1] - 3) < 0.15

# %% [markdown]
# ## What the source notes get wrong
#
# - One set of notes shows that the EMA estimates $E[X]$ by taking
#   expectations of the update, and concludes that the math checks out. The
#   step assumes $E[Y_{t-1}] = E[X]$ already, which is false from the usual
#   start $Y_0 = 0$: the estimate is biased low by the factor $1-(1-\alpha)^t$
#   (at $\alpha = 0.05$ and $t = 10$, 40% of $E[X]$; measured above, and
#   below), which is what bias correction removes.
# - The same notes say $\alpha$ must stay below 1 so that the update does not
#   cancel the previous mean. At $\alpha = 1$ nothing is cancelled: the old
#   value gets weight 0 and the EMA is the newest value itself; only
#   $\alpha > 1$ gives the old mean a negative weight.
# - The notes call the EMA a low-pass filter without saying that it also
#   delays: by about $(1-\alpha)/\alpha$ steps on a slow change (3.9 steps at
#   $\alpha = 0.2$, measured above), the lag part of its error.

# %%
start_10 = explore.many_runs(alpha=0.05, steps=10, runs=4000, y0=0.0)[-1].mean()
print(f"alpha 0.05, Y_0 = 0: average Y_10 / E[X] = {start_10 / 2:.2f} "
      f"(1 - 0.95^10 = {1 - 0.95 ** 10:.2f})")
assert abs(start_10 / 2 - (1 - 0.95 ** 10)) < 0.02
_ = assert_close("EMA at alpha = 1 vs the stream itself", ema(stream[:100], 1.0),
                 stream[:100], 1e-15)

# %% [markdown]
# ## Key takeaways
#
# - The mean of a stream needs only the current average and a count:
#   $Y_t = (1-\frac1t)Y_{t-1} + \frac1t X_t$ equals the batch mean at every step.
# - Fixing the weight, $Y_t = (1-\alpha)Y_{t-1} + \alpha X_t$, gives the
#   exponential moving average: a value $\tau$ steps old weighs
#   $\alpha(1-\alpha)^\tau$, and the weights of $t$ values sum to $1-(1-\alpha)^t$.
# - For a stationary stream it estimates $E[X]$, but keeps a variance of
#   $\frac{\alpha}{2-\alpha}\sigma^2$: it never stops listening to new noise.
# - Started at 0 it is biased low; divide by $1-(1-\alpha)^t$ to correct it.
# - "How many values" has three answers: the newest $1/\alpha$ carry 63% of
#   the weight; the weights' mean age is $(1-\alpha)/\alpha$; and the plain
#   mean with the same noise and age has $2/\alpha - 1$ values (19 for
#   $\alpha = 0.1$, not 10).
# - It is a low-pass filter that also delays a slow change by about
#   $(1-\alpha)/\alpha$ steps; its tracking error is a lag part that grows as
#   $\alpha$ shrinks plus a noise part that grows with $\alpha$. It still
#   tracks a moving mean far better than the plain running mean.
# - Batch norm's moving statistics are this EMA: Keras `momentum=0.99` is
#   $\alpha = 0.01$, CS231n's default 0.9 is $\alpha = 0.1$; PyTorch's
#   `momentum` is $\alpha$ itself.
#
# ## Exercises
#
# **1. A streaming mean.** Write `streaming_mean(x)` that returns an array of
# the same length as the 1-D array `x`, whose entry $t-1$ is the mean of the
# first $t$ values. Use the 1/t update in a loop: the checker hands your
# function an array that refuses `np.mean` and `np.cumsum` (and `x.mean()`,
# `x.cumsum()`), so those shortcuts raise an error that says so.

# %%
def streaming_mean(x):
    raise NotImplementedError("replace with your code")


_ = exercises.check_streaming_mean(streaming_mean)

# %% [markdown]
# **2. A bias-corrected EMA.** Write `ema_corrected(x, alpha)` that runs
# $Y_t = (1-\alpha)Y_{t-1} + \alpha X_t$ from $Y_0 = 0$ over the 1-D array `x`
# and returns the corrected values $Y_t / (1-(1-\alpha)^t)$ for $t = 1, \dots, T$.

# %%
def ema_corrected(x, alpha):
    raise NotImplementedError("replace with your code")


_ = exercises.check_ema_corrected(ema_corrected)

# %% [markdown]
# ## References
#
# - NIST/SEMATECH, *e-Handbook of Statistical Methods*, section 6.4.3.1,
#   "Single Exponential Smoothing",
#   <https://www.itl.nist.gov/div898/handbook/pmc/section4/pmc431.htm>.
# - S. W. Smith, *The Scientist and Engineer's Guide to Digital Signal
#   Processing*, chapter 19, "Recursive Filters" (the single-pole low-pass filter).
# - D. P. Kingma and J. Ba, *Adam: A Method for Stochastic Optimization*,
#   ICLR 2015, [arXiv:1412.6980](https://arxiv.org/abs/1412.6980) (section 3,
#   bias correction).
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015,
#   [arXiv:1502.03167](https://arxiv.org/abs/1502.03167).
# - Keras API reference, *BatchNormalization layer* (`momentum=0.99`),
#   <https://keras.io/api/layers/normalization_layers/batch_normalization/>.
# - PyTorch documentation, *torch.nn.BatchNorm1d* (`momentum=0.1`, `None` for a
#   cumulative average),
#   <https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html>.
