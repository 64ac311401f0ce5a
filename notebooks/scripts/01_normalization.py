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
# - say why normalizing the data once is not enough for a deep network.

# %%
import numpy as np

from bnlib import data, normalize
from bnlib.course import checks, plots
from bnlib.lessons.lesson01 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true

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
# `(N, H, W, C) = (30, 32, 32, 1)`, channels last as in Keras. Each image is
# Gaussian noise with its own brightness (an offset from 0 to 59) and its own
# contrast (a scale from 1 to 4), so the images differ a lot from each other.

# %%
x = data.random_images()
print("shape", x.shape)
print(explore.describe_line("raw", x))
brightness, contrast = x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))
print(f"image means span {np.ptp(brightness):.1f}; image stds from "
      f"{contrast.min():.2f} to {contrast.max():.2f}")
assert x.shape == (30, 32, 32, 1) and np.ptp(brightness) > 50

# %%
fig = explore.image_panels(x, "raw images: values spread over about -14 to 67")

# %% [markdown]
# ## Case 1: min-max scaling, one statistic per pixel
#
# With `axis=0` the minimum and maximum are taken **across the 30 images**,
# separately for each of the 32×32 pixel positions: 1,024 minima and 1,024
# maxima, each of shape `(1, 32, 32, 1)` so they broadcast against the data.
# Here it is by hand, then compared with `bnlib.normalize.min_max_scale`.

# %%
x_min = x.min(axis=0, keepdims=True)
x_max = x.max(axis=0, keepdims=True)
scaled = (x - x_min) / (x_max - x_min)
scaled_lib, mm_stats = normalize.min_max_scale(x, axis=0)
print("statistics shape", mm_stats.minimum.shape)
assert_close("max |by hand - bnlib|", scaled, scaled_lib, 1e-12)
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
fig = explore.image_panels(scaled, "min-max scaled per pixel: range [0, 1]")

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
assert_close("max |by hand - bnlib|", z, z_lib, 1e-12)
assert_below("largest |mean| over the 1,024 pixels", np.abs(z.mean(axis=0)).max(), 1e-12)
assert_below("largest |variance - 1| over pixels", np.abs(z.var(axis=0) - 1).max(), 1e-12)
print(explore.describe_line("standardized", z))

# %% [markdown]
# The mean is 0 and the variance 1 at **every** pixel, hence overall too. There
# is no fixed range any more: values here run from about -2.1 to 2.1, because
# with only 30 images no value can be more than $\sqrt{29} \approx 5.4$
# standard deviations from its pixel's mean, and Gaussian-like data rarely
# goes near that.

# %%
assert_true("standardized values stay within ±sqrt(N - 1)",
            2.0 < np.abs(z).max() <= np.sqrt(29), f"max |z| = {np.abs(z).max():.3f}")
fig = explore.image_panels(z, "standardized per pixel: mean 0, variance 1")

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
# which is what batch normalization will do for each unit of a layer; a global
# statistic only changes the units of measurement.
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
# Move the mean away from 0, or widen the spread, and watch the slope die.

# %% tags=["nbval-ignore-output"]
explore.saturation_explorer()

# %% [markdown]
# At the default setting (sigmoid, standardized inputs), and for comparison the
# raw image pixels fed straight in:

# %%
fig, text = explore.saturation_view("sigmoid", 0.0, 1.0)
print(text)
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
# Each run below uses its own best fixed learning rate, $2/(\lambda_{\max} +
# \lambda_{\min})$ with $\lambda$ the Hessian's eigenvalues, and stops when the
# excess loss is a millionth of where it started.

# %% tags=["nbval-ignore-output"]
explore.loss_explorer()

# %% [markdown]
# At the default ratio of 10:

# %%
fig, text = explore.loss_view(10.0)
print(text)
(_, raw_steps, raw_k), (_, std_steps, std_k) = explore.descent_comparison(10.0)
assert abs(raw_k / 100 - 1) < 0.1 and std_k < 1.1   # "a condition number near 100"
assert raw_steps > 200 and std_steps <= 3

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
# ## From preprocessing to the network
#
# So far we normalized the **data**, once, before training:
#
# ![Normalization as preprocessing: the data are normalized once, then pass
# through every layer](../images/old-norm.png)
#
# But every hidden layer is itself a learner with inputs. A sigmoid unit is a
# small logistic regression on the previous layer's outputs, and we just saw
# that logistic regression, like any gradient-trained model, prefers
# standardized inputs. Do the hidden layers get them? Let us check with
# standardized data and one random tanh layer.

# %%
inputs, _ = normalize.standardize(rng.normal(size=(1000, 8)) @ rng.normal(size=(8, 8)))
w1, b1 = rng.normal(size=(8, 16)), rng.normal(size=16)
hidden = np.tanh(inputs @ w1 + b1)          # what layer 2 receives
for name, a in (("data (layer 1's input)", inputs), ("layer 2's input", hidden)):
    m, s = np.abs(a.mean(axis=0)), a.std(axis=0)
    print(f"{name:<23} largest |unit mean| {m.max():.2f}, "
          f"unit stds {s.min():.2f} to {s.max():.2f}")
assert np.abs(inputs.mean(axis=0)).max() < 1e-12 and np.allclose(inputs.std(axis=0), 1)
assert np.abs(hidden.mean(axis=0)).max() > 0.3 and hidden.std(axis=0).min() < 0.7

# %% [markdown]
# The data are perfectly standardized, yet the second layer's 16 inputs have
# means far from 0 and standard deviations well below 1, different for every
# unit, and they will keep changing as the weights of layer 1 learn. The idea
# of batch normalization is to **move normalization into the network**, in
# front of every layer:
#
# ![Normalization inside the network: each layer normalizes its inputs before
# its linear map and activation](../images/new-norm.png)

# %%
hidden_normalized, _ = normalize.standardize(hidden, axis=0)
assert_below("layer 2 inputs after normalizing: max |mean|",
             np.abs(hidden_normalized.mean(axis=0)).max(), 1e-12)
assert_below("max |std - 1|", np.abs(hidden_normalized.std(axis=0) - 1).max(), 1e-12)
print("layer 2's inputs are standardized again")

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
# - Normalizing the data does not normalize the hidden layers' inputs: batch
#   normalization normalizes before every layer.
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
# **2. Standardize new data.** Write `standardize_new(x_train, x_new)` that
# standardizes the rows of `x_new` (shape `(M, D)`) with the per-feature mean and
# population standard deviation of `x_train` (shape `(N, D)`).

# %%
def standardize_new(x_train, x_new):
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
