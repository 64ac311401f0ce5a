# %% [markdown]
# # 01 · Normalization
#
# Batch normalization is, at heart, an old preprocessing habit moved inside the
# network. This lesson takes that habit apart: what the two usual transforms do
# to data, and *why* a network learns faster when its inputs are centred and
# scaled.
#
# **After this lesson you will be able to**
# - write min-max scaling and standardization, and say which statistics they use
#   and along which axis;
# - apply both to a batch of images with one statistic per pixel, and predict
#   the range, mean and variance you get;
# - explain, with the slope of sigmoid and tanh, why inputs far from zero make
#   units saturate and learn slowly;
# - explain, with loss contours, why features on different scales make gradient
#   descent zig-zag, and how standardizing fixes it;
# - say why batch normalization standardizes each feature instead of whitening;
# - say why normalizing the data once is not enough for a deep network, and
#   where in a layer batch normalization goes.

# %%
import matplotlib.pyplot as plt
import numpy as np

from bnlib import data, normalize
from bnlib.course import checks, plots, seeds, widgets
from bnlib.lessons.lesson01 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true
from bnlib.course.timing import best_time

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## Two transforms
#
# **Min-max scaling** maps the smallest value to 0 and the largest to 1:
#
# $$x_{\text{new}} = \frac{x - x_{\min}}{x_{\max} - x_{\min}}$$
#
# **Standardization** shifts the mean to 0 and stretches the spread to a
# standard deviation of 1:
#
# $$x_{\text{new}} = \frac{x - \mu}{\sigma}$$
#
# Both are *affine*: subtract one number, divide by a positive number. What
# matters is which numbers, and over which values they are computed. The
# functions in `bnlib.normalize` take an `axis` argument that means what it
# means in NumPy: the axes the statistics are computed **over**.
#
# ## The data: 30 random "images"
#
# Our toy data set has 30 grayscale images of 32×32 pixels, stored as
# `(N, H, W, C) = (30, 32, 32, 1)`: images, height (rows), width (columns),
# channels, channels last as in Keras. Each image is Gaussian noise with its own
# brightness (a whole-number offset from 0 to 59) and its own contrast (a
# whole-number scale from 1 to 4), so the images differ a lot from each other.

# %%
x = data.random_images()
print("shape", x.shape)
print(explore.describe_line("raw", x))
brightness, contrast = x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))
print(f"image means span {np.ptp(brightness):.1f}; image stds from "
      f"{contrast.min():.2f} to {contrast.max():.2f}")
assert x.shape == (30, 32, 32, 1) and np.ptp(brightness) > 50

# %%
fig = explore.image_panels(x, "raw images")

# %% [markdown]
# Both images are drawn on **one** grey scale, the colour bar's, from the
# batch's smallest to its largest value: image 4 (mean 57) is visibly brighter
# than image 0 (mean 38). Each panel scaling its own greys would make them look
# the same and hide the very differences normalization is about. Every figure
# of images in this lesson does the same, one scale per row.
#
# ## Case 1: min-max scaling, one statistic per pixel
#
# With `axis=0` the minimum and maximum are taken **across the 30 images**,
# separately for each of the 32×32 pixel positions: 1,024 minima and 1,024
# maxima, stored in two arrays of shape `(1, 32, 32, 1)` (`keepdims=True`) so
# they broadcast against the data.
# Here it is by hand, then compared with `bnlib.normalize.min_max_scale`.

# %%
x_min = x.min(axis=0, keepdims=True)
x_max = x.max(axis=0, keepdims=True)
scaled = (x - x_min) / (x_max - x_min)
scaled_lib, mm_stats = normalize.min_max_scale(x, axis=0)
print("statistics shape", mm_stats.minimum.shape)
assert_close("max |by hand - bnlib|", scaled, scaled_lib, 1e-15)
print(explore.describe_line("min-max", scaled))

# %% [markdown]
# Every pixel position now has its smallest value at exactly 0 and its largest
# at exactly 1 (one image supplies each), so the whole batch spans $[0, 1]$.
# The mean and variance are *not* fixed by this transform: they depend on how
# the values sit between the extremes.

# %%
assert_true("every pixel's minimum is 0 and maximum is 1",
            np.allclose(scaled.min(axis=0), 0) and np.allclose(scaled.max(axis=0), 1))
assert_true("all values lie in [0, 1]", scaled.min() >= 0 and scaled.max() <= 1,
            f"range [{scaled.min():.3f}, {scaled.max():.3f}]")
fig = explore.image_panels(scaled, "min-max scaled per pixel")
at_one_4 = np.mean(scaled[4] == 1.0)
print(f"image 4: {at_one_4:.1%} of its pixels are exactly 1 (the brightest of the 30 there); "
      f"image 0: {np.mean(scaled[0] == 1.0):.1%}")
assert 0.2 < at_one_4 < 0.3 and np.mean(scaled[0] == 1.0) == 0

# %% [markdown]
# Image 4 now looks washed out: it is one of the brightest images, so at
# almost a quarter of the pixel positions it supplies the maximum and is
# mapped to exactly 1, a flat white. Min-max scaling is decided by the
# extremes, one image per pixel.

# %% [markdown]
# ## Case 2: standardization, one statistic per pixel
#
# Same axis, different statistics: each pixel position gets the mean and the
# (population) standard deviation of its 30 values.

# %%
mu = x.mean(axis=0, keepdims=True)
sigma = x.std(axis=0, keepdims=True)
z = (x - mu) / sigma
z_lib, std_stats = normalize.standardize(x, axis=0)
assert_close("max |by hand - bnlib|", z, z_lib, 1e-15)
assert_below("largest |mean| over the 1,024 pixels", np.abs(z.mean(axis=0)).max(), 1e-14)
assert_below("largest |variance - 1| over pixels", np.abs(z.var(axis=0) - 1).max(), 1e-14)
print(explore.describe_line("standardized", z))

# %% [markdown]
# The mean is 0 and the variance 1 at **every** pixel, hence overall too. There
# is no fixed range any more, and yet the values here run only from about -2.1
# to 2.1. (No standardized value of 30 numbers can exceed $\sqrt{29} \approx
# 5.4$, whatever the data: that bound, Samuelson's inequality, explains
# nothing.) The reason is how the data were made. At every pixel the 30 values
# are mostly the 30 images' brightness offsets, spread fairly evenly between 0
# and 59, plus a little noise; and evenly spread values, standardized, end
# near $\pm\sqrt 3 \approx 1.73$ (the most extreme value of a uniform
# distribution is $\sqrt 3$ standard deviations from its mean). Gaussian data
# would reach further: its tails are long.

# %%
offsets_z = normalize.standardize(brightness)[0]   # the 30 image means, standardized
gauss_z = normalize.standardize(rng.standard_normal(x.shape), axis=0)[0]
print(f"max |z|: the data {np.abs(z).max():.2f}; the 30 brightness offsets alone "
      f"{np.abs(offsets_z).max():.2f}; Gaussian data of the same shape {np.abs(gauss_z).max():.2f}")
assert 1.5 < np.abs(offsets_z).max() < 1.9 < np.abs(z).max() < 2.5 < 3.2 < np.abs(gauss_z).max()
fig = explore.image_panels(z, "standardized per pixel")

# %% [markdown]
# ## Do the images still look the same?
#
# Each transform is increasing at each pixel, so it keeps one ordering exactly:
# **at any pixel, the 30 images keep their ranking** (the brightest image at a
# pixel stays the brightest there).
#
# Inside one image, the story is subtler. Each pixel position was shifted and
# stretched by its *own* numbers, so two pixels of the same image can swap
# order. They look alike because the 1,024 per-pixel statistics are
# similar (they are dominated by the differences between images), so the
# transform is close to one shared affine map. We measure "look alike" with the
# rank correlation of each image with its transformed self (1 = same ordering).
#
# Min-max creates **ties**: at every pixel the brightest of the 30 images becomes
# exactly 1, so an image that is the brightest almost everywhere has most of its
# pixels at the same value 1.0. Tied pixels share their average rank (the usual
# convention, `scipy.stats.rankdata`); breaking the ties in whatever order a sort
# leaves them would give a different answer on a different computer.

# %%
assert_true("per pixel, the ranking of the 30 images is unchanged",
            explore.order_kept(x, scaled, axis=0)
            and explore.order_kept(x, z, axis=0))
at_one = (explore.flatten_images(scaled) == 1.0).sum(axis=1)
print(f"after min-max, image {at_one.argmax()} has {at_one.max()} of its 1,024 pixels at exactly 1.0")
for name, new in (("min-max", scaled), ("standardized", z)):
    r = explore.rank_correlation_per_image(x, new)
    print(f"{name:<13} rank correlation per image: median {np.median(r):.3f}, "
          f"lowest {r.min():.3f}; images below 0.7 have std <= {contrast[r < 0.7].max():.2f}")
    assert np.median(r) > 0.8 and r.min() < 0.7 and contrast[r < 0.7].max() < 1.1
    assert abs(np.median(r) - {"min-max": 0.85, "standardized": 0.96}[name]) < 0.005

# %% [markdown]
# A typical image keeps most of its ordering (median rank correlation 0.85
# after min-max, 0.96 after standardizing), but the lowest correlations are far from
# 1: they all belong to the low-contrast images (standard deviation about 1),
# whose own noise is small next to the pixel-to-pixel differences in the
# statistics. Min-max suffers more because a minimum or maximum of 30 values is
# a much noisier statistic than a mean:

# %%
spread_of_min = x.min(axis=0).std()
spread_of_mean = x.mean(axis=0).std()
print(f"across the 1,024 pixels: the per-pixel minimum varies with std {spread_of_min:.2f}, "
      f"the per-pixel mean with std {spread_of_mean:.2f}; a typical pixel's std across "
      f"images is {x.std(axis=0).mean():.1f}")
assert spread_of_min > 3 * spread_of_mean and spread_of_mean < 0.05 * x.std(axis=0).mean()

# %% [markdown]
# If you want the
# images to look **exactly** the same, use one statistic for the whole data set
# (`axis=None`): then every value goes through the same increasing affine map,
# and the order of pixels inside every image is preserved.

# %%
scaled_global, _ = normalize.min_max_scale(x, axis=None)
z_global, _ = normalize.standardize(x, axis=None)
flat = explore.flatten_images
assert_true("one statistic for all: pixel order inside every image kept",
            explore.order_kept(flat(x), flat(scaled_global), axis=1)
            and explore.order_kept(flat(x), flat(z_global), axis=1))
print(explore.describe_line("global z", z_global))

# %% [markdown]
# Which to choose is a modelling decision: per-pixel statistics put every input
# of a model on the same footing (each input unit sees mean 0, variance 1),
# which is what batch normalization will do for each unit of a dense layer; a
# global statistic only changes the units of measurement. (For images inside
# a convolutional network, batch norm keeps one statistic per **channel**,
# over the N images and all H×W positions, not one per pixel: lesson 09.)
#
# One more habit from practice: the statistics are **fitted once** on training
# data and then **applied** unchanged to new data (`normalize.apply_min_max`,
# `normalize.apply_standardize`). New data is then not exactly in $[0, 1]$ or at
# mean 0, and that is correct: it must go through the same map the model was
# trained with.

# %%
fitted, train_stats = normalize.min_max_scale(x[:20], axis=0)
applied = normalize.apply_min_max(x[20:], train_stats)
outside = np.mean((applied < 0) | (applied > 1))
print(f"last 10 images through the first 20's map: range "
      f"[{applied.min():.3f}, {applied.max():.3f}], {outside:.1%} of values outside [0, 1]")
assert applied.min() < 0 and outside > 0

# %% [markdown]
# ## Why it helps, part 1: keep units where they respond
#
# A unit with a sigmoid or tanh activation responds to a change in its input
# $z$ by the **slope** of the activation at $z$, and gradient descent learns
# through that same slope (it multiplies every gradient that flows back through
# the unit):
#
# $$\sigma'(z) = \sigma(z)\,(1-\sigma(z)) \le 0.25, \qquad \tanh'(z) = 1-\tanh^2(z) \le 1.$$
#
# Both slopes peak at $z=0$ and vanish in the tails. A unit whose inputs sit far
# out there is **saturated**: its output hardly moves and almost no gradient
# reaches the weights before it.

# %%
zs = np.linspace(-6, 6, 1201)
slopes = {"sigmoid": explore.sigmoid_grad(zs),
          "tanh": explore.tanh_grad(zs)}
fig = plots.curves(zs, {"sigmoid(z)": explore.sigmoid(zs), "tanh(z)": np.tanh(zs),
                        "sigmoid'(z)": slopes["sigmoid"], "tanh'(z)": slopes["tanh"]},
                   xlabel="input z", ylabel="value", title="The functions change most at z = 0")
for slope_line, f_line in zip(fig.axes[0].lines[2:], fig.axes[0].lines[:2]):
    slope_line.set(color=f_line.get_color(), linestyle="--")   # a slope dashed, in its function's colour
legend = fig.axes[0].legend(loc="upper left")
for name, slope in slopes.items():
    flat = zs[(zs > 0) & (slope < 0.1 * slope.max())].min()   # where the slope falls below 10%
    print(f"{name}: largest slope {slope.max():.3f} at z = {abs(zs[slope.argmax()]):.2f}; "
          f"at z = 4 it is {slope[zs.searchsorted(4.0)]:.4f}; below 10% of it for |z| > {flat:.2f}")
    assert abs(zs[slope.argmax()]) < 1e-9 and slope[zs.searchsorted(4.0)] < 0.1 * slope.max()
    assert abs(flat - {"sigmoid": 3.6, "tanh": 1.8}[name]) < 0.05

# %% [markdown]
# Call a unit saturated when its slope is below 10% of the peak: as printed,
# beyond $|z| \approx 3.6$ for sigmoid and $|z| \approx 1.8$ for tanh. Now feed a layer
# inputs drawn from $N(\text{mean}, \text{spread}^2)$ and count saturated units.
# Move the mean away from 0, or widen the spread, and watch the slope die. (The
# histogram is scaled so its tallest bar has height 1 at every setting; inputs
# beyond the plotted ±10 are counted in its corner, never dropped.)

# %% tags=["nbval-ignore-output"]
explore.saturation_explorer()

# %% [markdown]
# At the default setting (sigmoid, standardized inputs), and for comparison the
# raw image pixels fed straight in:

# %%
print(widgets.readout(explore.SaturationScene, activation="sigmoid", mean=0.0, scale=1.0))
sat_std, slope_std = explore.saturation("sigmoid", 0.0, 1.0)
raw_mean, raw_std = round(float(x.mean()), 1), round(float(x.std()), 1)
sat_raw, slope_raw = explore.saturation("sigmoid", raw_mean, raw_std)
print(f"raw pixels N({raw_mean}, {raw_std}^2): saturated {sat_raw:.1%}, "
      f"mean slope {slope_raw:.1%} of the peak")
print(f"the average slope is {slope_std / slope_raw:.0f} times larger after standardizing")
assert sat_std < 0.001 and slope_std > 0.8
assert sat_raw > 0.9 and slope_raw < 0.05 and slope_std / slope_raw > 25

# %% [markdown]
# Standardized inputs leave essentially no sigmoid unit saturated and keep the
# average slope above 80% of its best; raw pixels saturate over 90% of the
# units and keep under 5% of the slope. That is a gradient more than 25 times
# smaller, before any other problem. (tanh is steeper, so it saturates sooner:
# try it in the explorer.)
#
# ## Why it helps, part 2: round loss surfaces
#
# Take linear regression with two features, the first 10 times wider than the
# second, and the squared-error loss. The loss is a quadratic bowl whose
# curvature along each weight is the mean square of its feature (its variance,
# for centred features): about 100 times steeper along weight 1 than along
# weight 2. Gradient descent needs a learning rate small enough for the steep
# direction, which is then painfully slow along the flat one. Standardizing the
# features makes the bowl round. (It fixes different *scales*; strongly
# correlated features still tilt and stretch the bowl, which standardization
# alone does not undo.)
#
# By default each run below uses its own best fixed learning rate,
# $2/(\lambda_{\max} + \lambda_{\min})$ with $\lambda$ the Hessian's
# eigenvalues, and stops when the excess loss is a millionth of where it
# started. The contours are levels of $\log_{10}$ of the loss, on one colour
# scale for both panels and every ratio (the colour bar); the path is drawn
# over all its steps, the first 20 marked. The *learning rate* menu sets the
# rate as a fraction of $2/\lambda_{\max}$ instead, each panel its own: at
# 1.05 the steep direction overshoots further at every step and descent
# diverges; at 0.1 it is safe but slow.

# %% tags=["nbval-ignore-output"]
explore.loss_explorer()

# %% [markdown]
# At the default ratio of 10:

# %%
print(widgets.readout(explore.LossScene, ratio=10.0, rate=0.0))
(_, raw_steps, raw_k), (_, std_steps, std_k) = explore.descent_comparison(10.0)
assert abs(raw_k / 100 - 1) < 0.1 and std_k < 1.1   # "a condition number near 100"
assert raw_steps > 200 and std_steps <= 3
x_raw, y_raw = explore.regression_data(10.0)
for rate in (0.9, 1.05):     # either side of the stability limit 2 / lambda_max
    path, steps, _ = explore.gradient_descent(x_raw, y_raw, rate=rate)
    losses = 0.5 * np.mean((x_raw @ path.T - y_raw[:, None]) ** 2, axis=0)
    verdict = f"converges in {steps} steps" if rate < 1 else (
        f"diverges: after {len(path) - 1} steps the loss is {losses[-1] / losses[0]:.0f} "
        f"times its starting value")
    print(f"rate {rate} x 2/lambda_max: {verdict}")
    assert steps < 1000 if rate < 1 else losses[-1] > 5 * losses[0]

# %% [markdown]
# The elongated bowl has a condition number (ratio of largest to smallest
# curvature) near 100, and descent zig-zags across the narrow valley for
# hundreds of steps; the round one takes 2. With the best fixed rate the
# distance to the minimum shrinks by a factor $(\kappa-1)/(\kappa+1) \approx
# 1 - 2/\kappa$ per step, and the excess loss (a quadratic in that distance)
# by its square, about $1 - 4/\kappa$. So reaching $10^{-6}$ of the starting loss takes about
# $\tfrac{\kappa}{4}\ln 10^{6} \approx 3.45\,\kappa$ steps: proportional to the
# condition number $\kappa$, which itself grows as the **square** of the scale ratio.

# %%
for ratio in (1.0, 3.0, 10.0, 30.0):
    (_, s_raw, k_raw), (_, s_std, _) = explore.descent_comparison(ratio)
    print(f"ratio {ratio:>4.0f}: condition {k_raw:7.1f}, steps raw {s_raw:5d} "
          f"(3.45 x condition = {3.45 * k_raw:6.0f}), standardized {s_std}")
    assert s_std <= 3 and (ratio == 1.0 or abs(s_raw / (3.45 * k_raw) - 1) < 0.1)

# %% [markdown]
# ### Why not make the bowl perfectly round? Whitening
#
# Standardizing fixes the scales but leaves correlations: two features with
# correlation $\rho$ still give a tilted, stretched bowl, with condition number
# $(1+\rho)/(1-\rho)$, 19 for $\rho = 0.9$. **Whitening** removes that too: it
# multiplies the centred data by $C^{-1/2}$, the inverse square root of their
# covariance matrix, so the result has the identity covariance and the bowl is
# exactly round (ZCA whitening; PCA whitening rotates as well).

# %%
x_corr, y_corr = explore.correlated_data(rho=0.9, ratio=10.0)
versions = {"centred": x_corr - x_corr.mean(axis=0), "standardized": normalize.standardize(x_corr)[0],
            "whitened": explore.whiten(x_corr)}
steps_by = {}
for name, features in versions.items():
    _, steps_by[name], kappa = explore.gradient_descent(features, y_corr)
    print(f"{name:<12}: condition number {kappa:6.1f}, gradient-descent steps {steps_by[name]}")
assert steps_by["centred"] > 10 * steps_by["standardized"] > 10 * steps_by["whitened"]
_ = assert_close("whitened covariance vs the identity", np.cov(versions["whitened"].T, bias=True),
                 np.eye(2), 1e-14)

# %% [markdown]
# So why does batch normalization standardize each unit **separately**
# instead of whitening a layer's inputs? Ioffe and Szegedy (2015, section 2)
# give the reasons. Whitening every layer at every training step needs the
# covariance of the layer's $D$ units ($N D^2$ operations for a batch of $N$),
# its inverse square root (an eigendecomposition, about $9D^3$), and the
# gradient through both; per-unit standardization needs about $4ND$. And a
# mini-batch usually has fewer examples than the layer has units, so its
# covariance matrix is singular and cannot be inverted at all. Per-feature
# standardization is cheap, differentiable in closed form (lesson 04), and
# works for any batch of two or more examples. The counts for a batch of 256
# and a layer of 512 units, and the rank of a covariance from a batch of 60:

# %%
counts = explore.flop_counts(256, 512)
print(f"N = 256, D = 512: per feature about {counts['per_feature']:,} operations, whitening "
      f"about {counts['whitening']:,} ({counts['whitening'] / counts['per_feature']:,.0f} times more)")
batch_60 = rng.standard_normal((60, 100))
rank = np.linalg.matrix_rank(np.cov(batch_60.T, bias=True))
print(f"a batch of 60 examples of 100 units: covariance of rank {rank} out of 100 (singular)")
assert counts["whitening"] > 1000 * counts["per_feature"] and rank == 59

# %% tags=["nbval-ignore-output"]
wide = rng.standard_normal((256, 512))
t_std = best_time(lambda: normalize.standardize(wide), repeats=3)
t_white = best_time(lambda: explore.whiten(wide, eps=1e-5), repeats=3)
print(f"on this machine: standardize {t_std * 1e3:.2f} ms, whiten {t_white * 1e3:.1f} ms "
      f"({t_white / t_std:.0f} times slower)")

# %% [markdown]
# ## From preprocessing to the network
#
# So far we normalized the **data**, once, before training:
#
# ![Normalization as preprocessing: the data are normalized once, then pass
# through every layer](../images/old-norm.png)
#
# But every hidden layer is itself a learner with inputs. A sigmoid unit is a
# small logistic regression on the previous layer's outputs, and part 1 showed
# that a sigmoid or tanh unit learns only while its input $z$ stays near 0
# (part 2 showed the same preference of gradient descent for round bowls, in
# a linear model). Do the hidden layers get standardized inputs? Take a
# network set up the way the advice of this lesson says: the digits (8×8
# images, 60 pixels that vary), every pixel standardized; two tanh layers of
# 32 units with weights drawn from $N(0, 1/\text{fan-in})$ and zero biases
# (LeCun's initialization, which keeps $z$ at about the scale of the input).
# Each layer computes its **pre-activations** $z = xW + b$ (a row $x$ per
# example) and then $\tanh(z)$. We look at $z$ per unit over the whole
# training set, at initialization:

# %%
drift_seeds = seeds.LESSON_SEEDS
h0 = explore.preactivation_history(drift_seeds[0])
assert_below("layer 1: largest |unit mean of z| (inputs centred, so exactly 0)",
             np.abs(h0["mean1"][0]).max(), 2e-15)
print(f"layer 1: unit stds of z from {h0['std1'][0].min():.2f} to {h0['std1'][0].max():.2f}")
print(f"layer 2: largest |unit mean| {np.abs(h0['mean2'][0]).max():.2f}, unit stds from "
      f"{h0['std2'][0].min():.2f} to {h0['std2'][0].max():.2f}; "
      f"saturated outputs (|tanh| > 0.97) {h0['saturated2'][0]:.1%}")

# %% [markdown]
# Layer 1's pre-activations are centred exactly (centred inputs times any
# $W$), with spreads between about 0.7 and 1.6 because the pixels are
# correlated. Layer 2 receives $\tanh$ of those, squeezed toward 0, so its
# pre-activations have spreads between about 0.3 and 0.9, different for every
# unit: already not standardized, though hardly any unit is saturated. Now
# train the network (SGD, learning rate 0.1, batches of 60) and watch layer 2's
# statistics **while layer 1 learns** (three seeds: the initial weights and
# the batch order).

# %%
drift = explore.preactivation_drift(drift_seeds)
fig = explore.drift_figure(drift_seeds)
print(f"at initialization, largest unit std of layer 2: {seeds.spread(drift['std_high'])}")
print(f"after {explore.DRIFT_STEPS} steps: largest unit std / its initial value "
      f"{seeds.spread(drift['growth_high'], '.1f')}; smallest {seeds.spread(drift['growth_low'], '.1f')}")
print(f"largest move of a unit's mean, in initial stds: {seeds.spread(drift['shift'])}")
print(f"saturated outputs: {seeds.spread(100 * drift['saturated_start'], '.1f')} % at the start, "
      f"{seeds.spread(100 * drift['saturated_end'], '.0f')} % after training")
assert np.all(drift["std_high"] < 0.95) and np.all(drift["std_low"] < 0.5)
assert np.all(drift["growth_high"] > 2) and np.all(drift["shift"] > 0.3)

# %% [markdown]
# On every seed, layer 2's pre-activations start with spreads well below 1
# and then move: within 200 steps some unit's spread has more than doubled,
# and some unit's mean has moved by more than 0.3 of its initial spread.
# Whatever the layer above has learned about its inputs at step 0 is out of
# date at step 200, and the share of saturated outputs has grown from about
# 0.1% to about 4%. The data never changed; the layers below did.
#
# The idea of batch normalization is to **move normalization into the
# network**: standardize every layer's pre-activations $z$, with fresh
# statistics at every step, between the linear map and the activation:
#
# ![Normalization inside the network: each layer computes z = xW + b,
# standardizes z, then applies its activation](../images/new-norm.png)
#
# Why there, and not on the layer's input (the previous activation's output)?
# Ioffe and Szegedy (2015, section 3.2) normalize $z = xW + b$ because the
# output of a nonlinearity such as tanh is bounded and skewed, and its shape
# changes in training, so fixing its mean and variance leaves much of the
# change in place, whereas $z$, a sum of many terms, is closer to symmetric and
# Gaussian; and standardizing $z$ is what keeps the activation's input near 0,
# where part 1 showed units learn. (Normalizing after the activation is also
# used in practice; lesson 05 compares the two placements.) Here is layer 2's
# $z$ at the end of the training above, standardized per unit:

# %%
z2 = h0["z2_last"]
z2_normalized, _ = normalize.standardize(z2, axis=0)
assert_below("layer 2 pre-activations after standardizing: max |unit mean|",
             np.abs(z2_normalized.mean(axis=0)).max(), 5e-15)
assert_below("max |unit std - 1|", np.abs(z2_normalized.std(axis=0) - 1).max(), 1e-14)
print("every unit of layer 2 gets mean 0 and variance 1 again, at every step it is applied")

# %% [markdown]
# Two problems remain before this is a usable layer, and they are the next
# lessons. Statistics over *all* the data are too expensive to recompute at
# every training step, so batch normalization uses those of each mini-batch,
# and keeps a smoothed average of them for prediction time: that smoother is
# [02 Exponentially smoothed averages](02_exponential_smoothing.ipynb). And
# forcing every unit to mean 0 and variance 1 may not be what the network
# wants, which is what the learned scale and shift in
# [03 Batch norm: forward pass and inference](03_batchnorm_forward.ipynb) are for.

# %% [markdown]
# ## What the source notes get wrong
#
# - One set of notes says sigmoid and tanh are most saturated when their
#   inputs are **small**. It is the opposite: the slope is largest at $z = 0$
#   (0.25 and 1) and falls below 10% of that only for $|z|$ above 3.6
#   (sigmoid) and 1.8 (tanh), as measured in part 1 and again below.
# - A blog post says saturation kills ReLU units. ReLU does not saturate on
#   the positive side: its slope is exactly 1 for every $z > 0$, however large.
#   A ReLU unit "dies" when its inputs are **negative** (slope exactly 0), which
#   is not saturation of a flat tail.
# - The same post says saturation makes sigmoid gradients explode. The
#   sigmoid's slope is at most 0.25, so passing through a sigmoid can only
#   shrink a gradient (by 4 or more per layer, and far more when saturated):
#   saturation makes gradients **vanish**. Exploding gradients come from large
#   weights, not from the activation.
# - The worksheet labels its data array as (images, width, height, channels).
#   NumPy and Keras store images as (N, H, W, C): height (rows) before width
#   (columns). With square 32×32 images the mistake is invisible; with a
#   24×32 image it is not (below).
# - The worksheet draws each image's contrast as a random whole number from 0
#   to 4, so a contrast of 0, a constant image, is drawn with probability 1/5
#   per image: about 6 of 30 images, and at least one with probability 99.9%.
#   Such an image has standard deviation 0, and standardizing it per image
#   divides by 0. This course draws contrasts from 1 to 4.

# %%
sig_small, sig_large = explore.sigmoid_grad(np.array([0.1, 5.0]))
z_pos, h = np.array([1e-3, 1.0, 100.0]), 1e-4
relu_slope = (np.maximum(z_pos + h, 0) - np.maximum(z_pos - h, 0)) / (2 * h)  # centred difference
print(f"sigmoid slope at z = 0.1: {sig_small:.4f}; at z = 5: {sig_large:.4f}; "
      f"largest anywhere {explore.sigmoid_grad(zs).max():.2f}")
print(f"ReLU slope at z = 0.001, 1, 100: {np.round(relu_slope, 6)}")
assert sig_small > 10 * sig_large and explore.sigmoid_grad(zs).max() <= 0.25
assert np.allclose(relu_slope, 1.0)

# %% [markdown]
# And the worksheet's two slips, measured:

# %%
fig_hw, ax_hw = plt.subplots(figsize=(2.5, 2))
left, right, bottom, top = ax_hw.imshow(np.zeros((24, 32)), cmap="gray").get_extent()
plt.close(fig_hw)
print(f"an array of shape (24, 32) is drawn {right - left:.0f} pixels wide and "
      f"{bottom - top:.0f} high: shape[0] is the height")
assert (right - left, bottom - top) == (32, 24)
p_constant = 1 - 0.8 ** 30
print(f"contrast 0 with probability 1/5: {30 / 5:.0f} constant images expected in 30, "
      f"at least one with probability {p_constant:.1%}")
assert p_constant > 0.998 and np.all(contrast > 0.5)

# %% [markdown]
# ## Key takeaways
#
# - Min-max scaling maps the data to $[0, 1]$; standardization to mean 0 and
#   variance 1. Both are affine; `axis` decides which values share a statistic.
# - Per-pixel statistics keep each pixel's ranking across images; only a single
#   global statistic keeps the ordering of pixels inside every image exactly.
# - Fit the statistics on training data and apply the same map to new data.
# - Sigmoid and tanh respond (and pass gradient) only near 0: standardized
#   inputs keep units out of saturation.
# - Features on different scales make the loss an elongated bowl; gradient
#   descent then needs many more steps (about the condition number). Standardized
#   features make it round.
# - Normalizing the data does not normalize the hidden layers: even with a
#   careful initialization, layer 2's pre-activations $z = xW + b$ start with
#   spreads below 1 and drift as the layers below learn. Batch normalization
#   standardizes every layer's $z$, between the linear map and the activation.
#
# ## Exercises
#
# **1. Per-pixel min-max.** Write `min_max_per_pixel(x)` for a batch of shape
# `(N, H, W, C)`: scale each pixel position to $[0, 1]$ with the minimum and
# maximum across the N images.

# %%
def min_max_per_pixel(x):
    raise NotImplementedError("replace with your code")


_ = exercises.check_min_max_per_pixel(min_max_per_pixel)

# %% [markdown]
# **2. Standardize new data.** Write `standardize_new(x_train, x_new, eps)`
# that standardizes the rows of `x_new` (shape `(M, D)`) with the per-feature
# mean $\mu$ and population variance $\sigma^2$ of `x_train` (shape `(N, D)`):
# $(x_{\text{new}} - \mu)/\sqrt{\sigma^2 + \varepsilon}$. The small
# $\varepsilon$ keeps a feature that is constant in the training data from
# dividing by 0 (batch norm does the same, lesson 03).

# %%
def standardize_new(x_train, x_new, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_standardize_new(standardize_new)

# %% [markdown]
# **3. The sigmoid's slope.** Write `sigmoid_slope(z)` that returns
# $\sigma'(z)$ elementwise for an array `z`.

# %%
def sigmoid_slope(z):
    raise NotImplementedError("replace with your code")


_ = exercises.check_sigmoid_slope(sigmoid_slope)

# %% [markdown]
# ## References
#
# - Y. LeCun, L. Bottou, G. B. Orr and K.-R. Müller, *Efficient BackProp*, in
#   *Neural Networks: Tricks of the Trade*, Springer, 1998 (why inputs should be
#   centred and scaled, and the condition-number argument).
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015,
#   [arXiv:1502.03167](https://arxiv.org/abs/1502.03167).
# - I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press, 2016,
#   sections 6.3.2 (sigmoid saturation), 4.3.1 (condition number and gradient descent)
#   and 8.7.1 (batch normalization).
# - scikit-learn user guide, *Preprocessing data: standardization and scaling*,
#   <https://scikit-learn.org/stable/modules/preprocessing.html>.
