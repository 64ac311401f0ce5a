# %% [markdown]
# # 03 · Batch norm: the forward pass and inference
#
# Lesson [01](01_normalization.ipynb) showed why standardized inputs help a
# network learn, and lesson [02](02_exponential_smoothing.ipynb) built the
# exponential moving average. This lesson puts the two together into the
# forward pass of **batch normalization**, in training and at inference.
#
# **After this lesson you will be able to**
# - write the four steps of batch norm (batch mean, biased batch variance,
#   normalize with ε inside the square root, scale by γ and shift by β) and say
#   where the layer sits in a network;
# - explain why the learned γ and β are there, with an example where the best
#   values are far from 1 and 0;
# - say what ε protects against, and why a bias just before batch norm is wasted;
# - explain why inference cannot use batch statistics, and how the moving mean
#   and variance (two of the four vectors the layer stores) replace them, with
#   their two weaknesses, warm-up and lag, and what the paper does instead.

# %%
import numpy as np

from bnlib import batchnorm, data
from bnlib.course import checks, plots, seeds, widgets
from bnlib.lessons.lesson03 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## Where batch norm sits, and why it says "batch"
#
# A plain dense layer does two things: a linear map $z = xW + b$ (as
# everywhere in this course, a batch $x$ holds one example per row, shape
# (N, D)), then a nonlinearity $a = g(z)$.
#
# ![a dense layer: linear map, then activation](../images/regular.png)
#
# Batch norm adds a third step between them. The linear outputs $z$ are
# standardized, then rescaled, and only then handed to the activation:
#
# ![a dense layer with batch norm between the linear map and the activation](../images/batch-gradient.png)
#
# So normalization is no longer a preprocessing step done once to the data;
# it is a layer of the network, applied in front of every nonlinearity, and
# its parameters are trained with everything else.
#
# **Why "batch"?** We train with mini-batch gradient descent: each step looks
# at a small batch of examples. During training the mean and variance used to
# standardize are the statistics *of the current mini-batch*, recomputed on
# every step. Training mode therefore depends on which examples share the
# batch; we will come back to what that means at inference.
#
# In this lesson, as in the formulas, $x$ is the *input of the batch-norm
# layer* (the linear output $z$ above) and $y$ its output.

# %% [markdown]
# ## The four steps
#
# For a batch of $N$ examples and one feature (each feature is treated on its
# own; the paper writes $m$ for the batch size, this course writes $N$
# throughout and keeps $m$ for the momentum of the moving statistics):
#
# 1. batch mean: $\mu_B = \frac{1}{N}\sum_{i=1}^{N} x_i$
# 2. batch variance, the *biased* one (divide by $N$):
#    $\sigma_B^2 = \frac{1}{N}\sum_{i=1}^{N} (x_i - \mu_B)^2$
# 3. normalize, with a small $\varepsilon$ *inside* the square root:
#    $\hat{x}_i = \dfrac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \varepsilon}}$
# 4. scale and shift with two learned vectors: $y_i = \gamma\,\hat{x}_i + \beta$
#
# Here they are on a batch of 6 examples with 3 features of very different
# scales, written out with NumPy (axis 0 is the batch):

# %%
x = rng.normal(size=(6, 3)) * [1.0, 10.0, 0.1] + [5.0, -20.0, 0.0]
gamma, beta, eps = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0]), 1e-3

mu = x.mean(axis=0)                      # step 1: one mean per feature
var = ((x - mu) ** 2).mean(axis=0)       # step 2: biased variance
x_hat = (x - mu) / np.sqrt(var + eps)    # step 3: normalize
y = gamma * x_hat + beta                 # step 4: scale and shift

def show(v, digits=3):
    return "  ".join(f"{value + 0.0:8.{digits}f}" for value in np.round(v, digits))  # + 0.0: no "-0.000"


print("x     means", show(mu), "   stds", show(np.sqrt(var)))
print("x_hat means", show(x_hat.mean(axis=0)), "   stds", show(x_hat.std(axis=0)))
print("y     means", show(y.mean(axis=0)), "   stds", show(y.std(axis=0)))

# %% [markdown]
# Every feature of $\hat{x}$ has mean 0 and a standard deviation of exactly
# $\sqrt{\sigma_B^2/(\sigma_B^2+\varepsilon)}$, just under 1 for the two wide
# features. The third feature's spread is only about 0.06, so ε = 1e-3 is not
# small next to its variance (0.004), and its standard deviation drops to 0.896.
# After step 4 each feature has mean β and standard deviation γ times that
# factor: γ for the two wide features, but 0.448 rather than γ = 0.5 for the
# narrow one. Now the same batch through `bnlib`:

# %%
out, cache, _, _ = batchnorm.batchnorm_forward(x, gamma, beta, np.zeros(3), np.ones(3),
                                               training=True, eps=eps)
_ = assert_close("max |four steps - bnlib|", y, out, 1e-14)
_ = assert_close("y means vs beta", y.mean(axis=0), beta, 1e-14)
shrink = np.sqrt(var / (var + eps))
_ = assert_close("y stds vs gamma * sqrt(var / (var + eps))", y.std(axis=0), gamma * shrink,
                 1e-15)
assert_true("the narrow feature's std is clearly below its gamma = 0.5",
            y.std(axis=0)[2] < 0.46, f"{y.std(axis=0)[2]:.3f}")

# %% [markdown]
# Because the statistics come from the batch, one example's output depends on
# its companions. Put the first example in two different batches and its
# normalized output changes:

# %%
companions_a, companions_b = rng.normal(0, 1, (7, 3)), rng.normal(1, 2, (7, 3))
ones, zeros = np.ones(3), np.zeros(3)
in_a = batchnorm.batchnorm_forward(np.vstack([x[:1], companions_a]), ones, zeros, zeros, ones,
                                   training=True)[0][0]
in_b = batchnorm.batchnorm_forward(np.vstack([x[:1], companions_b]), ones, zeros, zeros, ones,
                                   training=True)[0][0]
print("example 0 in batch A:", in_a.round(3))
print("example 0 in batch B:", in_b.round(3))
assert_true("the same example gets different outputs", np.max(np.abs(in_a - in_b)) > 0.1,
            f"largest change {np.max(np.abs(in_a - in_b)):.3f}")

# %% [markdown]
# ## The worksheet's case 3a: batch-normalizing ten images by hand
#
# The seed worksheet uses 30 random 32×32 grey "images", each with its own
# brightness and contrast (`bnlib.data.random_images()`). Case 3a treats the
# first 10 as a mini-batch and batch-normalizes them **per pixel**: every one of
# the 32×32 positions gets its own mean and variance, computed across the 10
# images, as if each pixel were a separate feature of a dense layer. As in the
# worksheet, γ = 1, β = 0 and ε = 1e-8.
#
# This is *not* what batch norm does after a convolution. There, Keras's
# `BatchNormalization()` (`axis=-1`, the channels) keeps one mean and one
# variance per **channel**, computed over all N·H·W values of that channel:
# for these one-channel images, a single mean and variance for the whole batch.
# [Lesson 09](09_batchnorm_in_convnets.ipynb) builds batch norm for
# convolutional networks and contrasts the two.

# %%
images = data.random_images()
batch = images[:10]                                       # shape (10, 32, 32, 1)
pixel_mean = batch.mean(axis=0)                           # (32, 32, 1): one per pixel
pixel_var = ((batch - pixel_mean) ** 2).mean(axis=0)
bn_images = (batch - pixel_mean) / np.sqrt(pixel_var + 1e-8)
print(f"raw batch: shape {batch.shape}, min {batch.min():.2f}, max {batch.max():.2f}, "
      f"mean {batch.mean():.2f}, variance {batch.var():.2f}")
print(f"batch-normalized: min {bn_images.min():.2f}, max {bn_images.max():.2f}, "
      f"mean {abs(bn_images.mean()):.3f}, variance {bn_images.var():.3f}")

# %% [markdown]
# Below, the darkest and the brightest of the ten images before and after,
# each row on **one grey scale** (the colour bar), so that brighter means
# brighter across the two images of a row, and the histograms of all
# 10 × 32 × 32 values:

# %%
fig = explore.case3a_figure(batch, bn_images)

# %% [markdown]
# Every pixel position now has mean 0 and variance 1 across the ten images
# (checked below, together with bnlib given `axis=(1, 2, 3)`, which keeps
# height, width and channel as features). Notice what per-pixel batch norm
# does *not* do: it does not standardize each image on its own. Image 9,
# the brightest, is still the brightest after normalization, and image 2 the
# darkest, because each pixel is compared with the same pixel in the other
# nine images. That is why the histogram of the normalized values has separate
# clumps: the pixels of one image stay close together (they differ only by
# that image's noise), at a level set by how much brighter or darker than the
# batch average the image is. Images of similar brightness share a clump.

# %%
params = np.ones((32, 32, 1)), np.zeros((32, 32, 1))
bn_lib = batchnorm.batchnorm_forward(batch, *params, np.zeros((32, 32, 1)), np.ones((32, 32, 1)),
                                     training=True, eps=1e-8, axis=(1, 2, 3))[0]
_ = assert_close("max |by hand - bnlib|", bn_images, bn_lib, 1e-14)
_ = assert_below("largest |per-pixel mean|", np.abs(bn_images.mean(axis=0)).max(), 1e-14)
_ = assert_below("largest |per-pixel variance - 1| (it is 1 - 1e-8 / (var + 1e-8))",
                 np.abs(bn_images.var(axis=0) - 1).max(), 3e-10)
raw_means, levels = batch.mean(axis=(1, 2, 3)), bn_images.mean(axis=(1, 2, 3))
assert_true("the brightness order of the images is kept",
            np.array_equal(np.argsort(raw_means, kind="stable"), np.argsort(levels, kind="stable")),
            f"darkest image {np.argmin(levels)}, brightest {np.argmax(levels)}, before and after")
within = bn_images.std(axis=(1, 2, 3)).max()
assert_true("each image is a narrow clump: its pixels' std is small next to the range of levels",
            within < 0.1 * (levels.max() - levels.min()),
            f"largest std within an image {within:.2f}, levels from {levels.min():.2f} "
            f"to {levels.max():.2f}")
share = levels.var() / bn_images.var()
assert_true("the clumps are images: over 95% of the normalized values' variance is between images",
            share > 0.95, f"{share:.0%}")

# %% [markdown]
# Batch norm after a convolution, on the same batch: one channel, so one mean
# and one variance over all 10 × 32 × 32 values (bnlib's default `axis=-1`,
# like Keras's). Every image's pixels are shifted and scaled alike, so the
# per-pixel picture above does not apply:

# %%
per_channel = batchnorm.batchnorm_forward(batch, np.ones(1), np.zeros(1), np.zeros(1), np.ones(1),
                                          training=True, eps=1e-8)[0]
by_hand = (batch - batch.mean()) / np.sqrt(batch.var() + 1e-8)
_ = assert_close("per-channel batch norm = one mean and variance over N*H*W", per_channel,
                 by_hand, 1e-14)

# %% [markdown]
# ## Why γ and β?
#
# Step 4 may look like it undoes the work of step 3: we standardize, then
# immediately rescale to some other mean and spread. The point is that we do
# not *know* that mean 0 and variance 1 is what the next layer needs. So we
# make the scale and the shift learnable and let gradient descent pick them.
#
# **First, the layer can be the identity, in a precise sense.** With
# $\gamma = \sqrt{\sigma_B^2 + \varepsilon}$ and $\beta = \mu_B$ the layer gives
# back the batch those statistics came from, exactly. But γ and β are fixed
# numbers, and $\mu_B$, $\sigma_B^2$ change from batch to batch: on a second
# batch (drawn from the same distribution) the same γ and β do not give the
# input back.

# %%
gamma_id, beta_id = np.sqrt(var + eps), mu
y_id = batchnorm.batchnorm_forward(x, gamma_id, beta_id, zeros, ones, training=True, eps=eps)[0]
_ = assert_close("first batch: max |output - input|", y_id, x, 5e-14)
x2 = np.random.default_rng(1).normal(size=(6, 3)) * [1.0, 10.0, 0.1] + [5.0, -20.0, 0.0]
y2 = batchnorm.batchnorm_forward(x2, gamma_id, beta_id, zeros, ones, training=True, eps=eps)[0]
miss = np.abs(y2 - x2).max(axis=0)
assert_true("second batch: the same gamma and beta do not give its input back",
            np.all(miss > 0.01), "largest |output - input| per feature " + show(miss, 2))

# %% [markdown]
# The paper's identity argument uses the *population* statistics $E[x]$ and
# $\mathrm{Var}[x]$ of the layer's input instead: with $\gamma = \sqrt{\mathrm{Var}[x] +
# \varepsilon}$ and $\beta = E[x]$, the layer *at inference*, which normalizes
# with those statistics (next sections), returns every input unchanged. During
# training γ and β can undo the normalization on average, not batch by batch:
# the batch-to-batch wobble of $\mu_B$ and $\sigma_B$ stays (lesson 08 measures
# it as noise). Here with the distribution both batches were drawn from:

# %%
pop_mean, pop_var = np.array([5.0, -20.0, 0.0]), np.array([1.0, 100.0, 0.01])
y_pop = batchnorm.batchnorm_forward(x2, np.sqrt(pop_var + eps), pop_mean, pop_mean, pop_var,
                                    training=False, eps=eps)[0]
_ = assert_close("inference with population statistics: max |output - input|", y_pop, x2,
                 1e-15)

# %% [markdown]
# **Second, the network often wants something else.** Here is a small example.
# One batch-norm unit feeds a sigmoid that predicts a yes/no label. The label
# is "yes" mostly for inputs clearly above average, with a fairly sharp
# transition (the labels are drawn from $P(\text{yes}) =
# \text{sigmoid}(4\hat{x} - 4)$). With γ = 1 and β = 0 the sigmoid is centred
# on the average input and its slope is gentle: it answers about 50/50 where
# the labels are almost all "no". We train **only γ and β** by gradient
# descent on the cross-entropy, using the gradients from bnlib's backward pass
# (the subject of [lesson 04](04_batchnorm_backward.ipynb)):

# %%
fit = explore.fit_gamma_beta()
fig = explore.gamma_beta_figure(fit)
g_end, b_end = fit.gamma[-1], fit.beta[-1]
print(f"learned gamma {g_end:.2f}, beta {b_end:.2f} (labels drawn with 4 and -4)")
print(f"cross-entropy: {fit.loss[0]:.3f} at gamma=1, beta=0  ->  {fit.loss[-1]:.3f} learned")
near_start = explore.fraction_near_zero(fit, 1.0, 0.0)
near_end = explore.fraction_near_zero(fit, g_end, b_end)
print(f"examples whose sigmoid input is in [-1, 1]: {near_start:.0%} -> {near_end:.0%}")

# %% [markdown]
# That is one draw of the 1,000 examples and their labels. The same training on
# ten draws (seeds 0 to 9; each takes a few milliseconds), checked on every one:

# %%
fits = [explore.fit_gamma_beta(seed=seed) for seed in range(10)]
for claim, (holds, detail) in explore.gamma_beta_verdicts(fits).items():
    assert_true(claim, holds, detail)
assert abs(g_end - 3.3) < 0.05 and abs(b_end + 3.3) < 0.05 and abs(near_start - 0.68) < 0.005

# %% [markdown]
# The learned unit is steep (γ ≈ 3.3 in the draw plotted, about 4 in the median
# draw) and shifted (β ≈ -3.3, about -4): it uses the sigmoid's curved,
# saturating ends to say a confident "no" for most inputs and a confident "yes"
# for the large ones. Forcing mean 0 and variance 1 would have kept about
# two-thirds of the inputs in the sigmoid's nearly linear middle, where it
# cannot express that sharp decision. The learned values are not 4 and -4
# exactly because 1,000 noisy labels only pin them down roughly: from draw to
# draw they scatter around the values the labels were drawn with.
# In a real network the same thing happens in every unit: standardization is
# the starting point (γ = 1, β = 0 is how Keras initializes them) and gradient
# descent moves away from it wherever that lowers the loss.

# %% [markdown]
# ## ε: a batch where a feature does not vary
#
# Why add ε at all? If a feature has the same value in every example of a
# batch (a dead ReLU upstream, a constant pixel, a batch of identical
# inputs), its batch variance is exactly 0 and step 3 divides 0 by 0:

# %%
flat = np.column_stack([np.full(4, 2.5), [1.0, 2.0, 3.0, 4.0]])   # feature 0 is constant
centred = flat - flat.mean(axis=0)
with np.errstate(invalid="ignore", divide="ignore"):
    no_eps = centred / np.sqrt((centred ** 2).mean(axis=0))   # eps = 0
print("without eps, feature 0:", no_eps[:, 0])
assert np.all(np.isnan(no_eps[:, 0]))
beta_flat = np.array([0.7, 0.0])
with_eps = batchnorm.batchnorm_forward(flat, np.ones(2), beta_flat, np.zeros(2), np.ones(2),
                                       training=True, eps=1e-3)[0]
print("with eps, feature 0:   ", with_eps[:, 0])
_ = assert_close("with eps the constant feature outputs beta", with_eps[:, 0], np.full(4, 0.7),
                 1e-15)

# %% [markdown]
# With ε the numerator is 0 and the denominator is $\sqrt{\varepsilon}$, so
# $\hat{x} = 0$ and the output is simply β: finite. One NaN would otherwise
# spread through every later layer and the loss. Keras uses ε = 1e-3 by default.
#
# Finite is not the same as harmless, though. The gradient that batch norm
# passes down (lesson 04 derives it) is multiplied by $1/\sqrt{\sigma_B^2 +
# \varepsilon}$, which for a constant feature is $1/\sqrt{\varepsilon} \approx 32$:
# the layer below receives the upstream gradient, centred, and **amplified 32
# times**. (A feature that is nearly constant, with variance small next to ε,
# gets nearly the same gain.)

# %%
_, cache_flat, _, _ = batchnorm.batchnorm_forward(flat, np.ones(2), beta_flat, np.zeros(2),
                                                  np.ones(2), training=True, eps=1e-3)
dout_flat = np.random.default_rng(2).normal(size=(4, 2))
dx_flat = batchnorm.batchnorm_backward(dout_flat, cache_flat)[0]
gain = 1 / np.sqrt(1e-3)
centred_dout = dout_flat[:, 0] - dout_flat[:, 0].mean()
_ = assert_close(f"constant feature: dx = (dout - its mean) / sqrt(eps), a gain of {gain:.1f}",
                 dx_flat[:, 0], gain * centred_dout, 1e-13)

# %% [markdown]
# ε must also sit *inside* the square root, $\sqrt{\sigma^2 + \varepsilon}$, not
# outside, $\sqrt{\sigma^2} + \varepsilon$. Outside, the forward pass is still finite
# (0 divided by ε), but the backward pass goes through the derivative of the
# square root, $1/(2\sqrt{v})$, which is infinite at $v = 0$: the chain rule
# multiplies it by the zero gradient arriving there and gets 0 × ∞ = NaN.
# Inside, the same derivative is $1/(2\sqrt{\varepsilon})$. One step of the chain
# for the constant feature (σ² = 0, upstream gradient 0 because the centred
# values are all 0):

# %%
var_flat, d_std = 0.0, 0.0            # the constant feature's variance; the gradient at the std
with np.errstate(divide="ignore", invalid="ignore"):
    d_var_outside = d_std / (2 * np.sqrt(np.float64(var_flat)))   # std = sqrt(var); eps added after
d_var_inside = d_std / (2 * np.sqrt(var_flat + 1e-3))              # std = sqrt(var + eps)
print(f"d_var with eps outside the root: {d_var_outside}, inside: {d_var_inside}")
assert np.isnan(d_var_outside) and d_var_inside == 0.0

# %% [markdown]
# ## The bias before batch norm is redundant
#
# A dense layer normally adds a bias: $z = xW + b$. Batch norm subtracts the
# batch mean of $z$ right after, and the mean of $xW + b$ is the mean of $xW$
# plus $b$. So the bias cancels exactly, whatever its value, and β already
# plays the role of a learned shift. Checked on a random layer:

# %%
inputs, W = rng.normal(size=(16, 5)), rng.normal(size=(5, 3))
b = np.array([100.0, -3.0, 0.5])
no_bias = batchnorm.batchnorm_forward(inputs @ W, ones, zeros, zeros, ones, training=True)[0]
with_bias = batchnorm.batchnorm_forward(inputs @ W + b, ones, zeros, zeros, ones,
                                        training=True)[0]
_ = assert_close("max |output with bias - without|", with_bias, no_bias, 3e-14)

# %% [markdown]
# (The difference above is not exactly 0 only because adding 100 and
# subtracting it again rounds in the last bits.) The gradient of the loss with
# respect to such a bias is therefore zero: it is the batch sum of the
# gradient reaching $z$, and batch norm's backward pass (lesson 04) makes that
# sum vanish for any upstream gradient. Checked with a random one:

# %%
_, cache_b, _, _ = batchnorm.batchnorm_forward(inputs @ W + b, ones, zeros, zeros, ones,
                                               training=True)
dout_b = np.random.default_rng(1).normal(size=(16, 3))     # any upstream gradient
dz = batchnorm.batchnorm_backward(dout_b, cache_b)[0]
_ = assert_below("largest |dL/db| = |sum of dL/dz over the batch|", np.abs(dz.sum(axis=0)).max(),
                 1e-14)

# %% [markdown]
# A bias there would never learn anything. That is why the layer before batch
# norm is built without one (`use_bias=False` in Keras, as in the diagram).

# %% [markdown]
# ## Inference: one example at a time
#
# At test time we often predict for a single example. Its "batch statistics"
# are useless: the mean of one value is that value, so step 3 gives
# $\hat{x} = 0$ and the layer outputs β whatever the input:

# %%
single = x[:1]
own_x_hat = (single - single.mean(axis=0)) / np.sqrt(single.var(axis=0) + eps)
print("x_hat from the example's own statistics:", own_x_hat)
assert_true("the output would be beta for any input", np.all(own_x_hat == 0))

# %% [markdown]
# And even for a batch of test examples, we want each prediction to depend
# only on its own input, not on which other examples happen to be in the
# batch. So inference uses fixed statistics that describe the training data:
# a mean $\mu$ and a variance $\sigma^2$ per feature, and the **inference
# formula** is
#
# $$\hat{x}_{\text{test}} = \frac{x_{\text{test}} - \mu}{\sqrt{\sigma^2 + \varepsilon}},
# \qquad y_{\text{test}} = \gamma\,\hat{x}_{\text{test}} + \beta .$$
#
# Where do $\mu$ and $\sigma^2$ come from? The paper (Ioffe & Szegedy, Algorithm
# 2) estimates them once training is over: it runs many training mini-batches
# of size $N$ through the trained network and averages their statistics per
# feature, $E[x] = E_B[\mu_B]$ and $\mathrm{Var}[x] = \frac{N}{N-1}\,E_B[\sigma_B^2]$
# (the factor $N/(N-1)$ corrects the bias of the batch variances, see below).
# Computing the mean and variance over the whole training set at once is the
# exact version of the same idea. Either needs an extra pass over the data
# after training. The paper also mentions (§3.1) the cheaper way frameworks
# use: keep a **moving mean and moving variance**, exponential moving averages
# of the batch statistics (lesson 02), updated for free on every training step:
#
# $$\mu \leftarrow m\,\mu + (1 - m)\,\mu_B, \qquad
# \sigma^2 \leftarrow m\,\sigma^2 + (1 - m)\,\sigma_B^2,$$
#
# with momentum $m$ = 0.99 in Keras: $m$ is the weight on the *old* value, so
# lesson 02's smoothing weight is α = 1 − m. The moving averages have two
# weaknesses. The first is a warm-up: Keras starts them at mean 0 and
# variance 1, and they need a few multiples of $1/(1-m)$ steps to forget that
# start. (The second, a lag behind a layer input that moves, comes after the
# explorer.) Below, one feature whose training set (4,000 values from a
# distribution with mean 3 and standard deviation 2) is fed in shuffled
# batches of 32:

# %%
momenta, n_steps = (0.9, 0.99, 0.999), 2000
runs = {m: explore.moving_statistics(m, 32, n_steps) for m in momenta}
train_mean = runs[0.99].train_mean
fig = explore.warmup_figure(runs, train_mean)
for m, run in runs.items():
    gap = abs(run.moving_mean[-1] - train_mean)
    print(f"momentum {m}: moving mean after {n_steps} steps {run.moving_mean[-1]:.3f}, "
          f"gap {gap:.3f}, start-up part left {train_mean * m ** n_steps:.3f}")

# %% [markdown]
# After warm-up the moving mean does not sit still: each batch mean scatters by
# $\sigma/\sqrt{N}$ (batch size N), and the moving average of them keeps a jitter of
# $\frac{\sigma}{\sqrt{N}}\sqrt{\frac{1-m}{1+m}}$ (lesson 02: an exponential average
# with weight α on the new value has α/(2−α) times the variance of what it averages),
# about 0.08 at momentum 0.9 and 0.025 at 0.99. So "caught up" means a gap of the
# size of that jitter, whatever the batches were:

# %%
for claim, (holds, detail) in explore.warmup_verdicts(runs).items():
    assert_true(claim, holds, detail)

# %% [markdown]
# The gap at momentum 0.999 is almost exactly what is left of the start value:
# $0.999^{2000} \approx 0.14$ of the way is still missing. A high momentum
# averages over more batches (less noise) but takes longer to warm up; a
# model trained for too few steps with a high momentum gives poor inference
# results even though its training looked fine.
#
# ### Explorer: batch statistics and the moving statistics
#
# Drag the batch size and the momentum. The dots are the statistics of each
# batch: they scatter around the training-set values (dashed), less for
# bigger batches (their spread is about $\sigma/\sqrt{N}$). The orange line
# is the moving statistic: it climbs from its start and then follows the
# dashed line, smoother for higher momentum.

# %% tags=["nbval-ignore-output"]
explore.statistics_explorer()

# %% [markdown]
# At the defaults (batch of 32, momentum 0.99), checked:

# %%
print(widgets.readout(explore.StatisticsScene, batch_size=32, momentum=0.99))
run = explore.moving_statistics(0.99, 32, 500)
spread, predicted = run.batch_mean.std(), np.sqrt(run.train_var / 32)
assert_true("batch means scatter about sigma/sqrt(N)", abs(spread / predicted - 1) < 0.15,
            f"{spread:.3f} vs {predicted:.3f}")
jitter = explore.moving_mean_jitter(0.99, 32, run.train_var)
assert abs(4 * jitter - 0.1) < 0.001
_ = assert_below(f"|moving mean - training-set mean| after 500 steps (4 x its jitter "
                 f"{jitter:.3f} is 0.1)", abs(run.moving_mean[-1] - run.train_mean), 0.1,
                 show=".3f")

# %% [markdown]
# Try a batch size of 2 or 4 in the explorer: the moving *variance* settles
# clearly below the training-set variance. Each batch variance divides by
# $N$, not $N - 1$, so on average it is $\frac{N-1}{N}\sigma^2$: for $N = 4$,
# only 75%. The normalization itself uses that biased variance on purpose
# (it makes each batch exactly standardized), but the moving variance is an
# *estimate* of the population variance. Multiplying by $N/(N-1)$ (Bessel's
# correction) removes the bias: that is the factor in the paper's Algorithm 2,
# and PyTorch applies it to every batch variance before smoothing it. Keras
# keeps the biased one (lesson 07 compares them).

# %%
for unbiased in (False, True):
    small = explore.moving_statistics(0.99, 4, 3000, unbiased=unbiased)
    ratio = small.moving_var[1000:].mean() / small.train_var
    expected = 1.0 if unbiased else 3 / 4
    _ = assert_close(f"batch of 4, {'unbiased' if unbiased else 'biased'} update: moving variance"
                     f" / training-set variance = {ratio:.3f}, vs {expected:g}", ratio, expected,
                     0.03)
paper = 4 / 3 * small.batch_var.mean() / small.train_var     # Algorithm 2: N/(N-1) E[var_B]
_ = assert_close(f"the paper's N/(N-1) * mean of the batch variances / training-set variance = "
                 f"{paper:.3f}, vs 1", paper, 1.0, 0.05)

# %% [markdown]
# ### Lag: a layer input that moves while the network learns
#
# The toy feature above never changes, so once warmed up the moving mean only
# jitters around it. Inside a network, a layer's input is computed by the
# layers before it, and it drifts while their weights learn. A moving average
# weighs the last $1/(1-m)$ steps or so, so it reports where the input *was*
# about that many steps ago: it lags.
#
# To see the lag alone, without the warm-up, we train a network (digits,
# 64-64-64-10 sigmoid MLP with batch norm before each activation, SGD with
# learning rate 0.5, batches of 32) whose moving statistics **start at the
# exact statistics** of the untrained network. Every 25 steps we compute the
# exact mean and variance of the second batch-norm layer's input over the
# whole training set and compare: the gap of the moving mean (in units of the
# exact standard deviation, median over the 64 units), and the test accuracy
# at inference with the moving statistics against the exact ones. Three seeds
# (thin lines), momentum 0.99 (Keras) and 0.999:

# %%
lag = explore.lag_runs(seeds.LESSON_SEEDS)
fig = explore.lag_figure(lag)
for claim, (holds, detail) in explore.lag_verdicts(lag).items():
    assert_true(claim, holds, detail)

# %% [markdown]
# While the weights move fast (the first few hundred steps) the moving mean
# trails the layer input by about a third of its standard deviation, far more
# than the batch noise, and inference with the moving statistics scores
# several points below inference with the exact ones: the train/inference
# mismatch. When learning slows the input stops moving, the moving mean
# catches up, and "close to the full-training-set statistics" becomes true:
# a few hundredths of a standard deviation, the same test accuracy. A higher
# momentum averages longer and lags longer. So a model evaluated during
# training, or after a short training, is judged with statistics that
# describe an older network. The remedy is to recompute the statistics
# exactly after training, with the weights frozen (as the paper's Algorithm 2
# does); [lesson 08](08_noise_batch_size_and_pitfalls.ipynb) measures what
# these "precise" statistics gain.

# ## The four vectors a batch-norm layer stores
#
# A batch-norm layer over $D$ features keeps four vectors of length $D$, and
# they are learned in two different ways:
#
# | vector | used in | learned by |
# |---|---|---|
# | γ (scale) | training and inference | gradient descent (it gets a gradient) |
# | β (shift) | training and inference | gradient descent |
# | moving mean | inference only | exponential smoothing of the batch means |
# | moving variance | inference only | exponential smoothing of the batch variances |
#
# (Keras lists the first two as trainable weights and the last two as
# non-trainable.) In a training loop nothing special is needed for γ and β:
# the backward pass returns dγ and dβ next to the weight gradients, and the
# same optimizer (plain SGD, momentum, RMSprop, Adam) updates them all. One
# training step with `bnlib.batchnorm.BatchNorm` shows both mechanisms at work:

# %%
layer = batchnorm.BatchNorm(3)
batch_x = rng.normal(5.0, 2.0, size=(32, 3))
out = layer(batch_x, training=True)                  # forward: smooths the moving statistics
layer.backward(rng.normal(size=out.shape))           # backward: gradients for gamma and beta
layer.gamma -= 0.1 * layer.dgamma                    # a gradient-descent step
layer.beta -= 0.1 * layer.dbeta
for name in ("gamma", "beta", "moving_mean", "moving_variance"):
    print(f"{name:>16}: {np.round(getattr(layer, name), 3)}")
_ = assert_close("moving mean = 0.99 * 0 + 0.01 * batch mean", layer.moving_mean,
                 0.01 * batch_x.mean(axis=0), 1e-15)

# %% [markdown]
# At inference (`training=False`) the layer uses the moving statistics and
# changes nothing, and each example's output depends on that example alone:

# %%
stored = layer.moving_mean.copy(), layer.moving_variance.copy()
alone = layer(batch_x[:1], training=False)
in_batch = layer(batch_x, training=False)[:1]
_ = assert_close("example 0 alone vs inside its batch", alone, in_batch, 1e-15)
assert_true("inference leaves the moving statistics untouched",
            np.array_equal(stored[0], layer.moving_mean)
            and np.array_equal(stored[1], layer.moving_variance))

# %% [markdown]
# ## Before or after the activation?
#
# The paper places batch norm on the linear output, before the nonlinearity,
# as in our diagram, and that is the most common choice. Some practitioners
# put it after the activation instead, and both are seen in practice; the
# mechanics of this lesson are the same either way, only the numbers being
# normalized differ. [Lesson 05](05_batchnorm_in_a_network.ipynb) trains
# both placements side by side.

# %% [markdown]
# ## What the source notes get wrong
#
# - **"Batch gradient descent".** One set of lecture notes says batch norm is
#   named after *batch gradient descent* and calls the layer with the extra
#   step "batch gradient descent". Training uses *mini-batch* gradient
#   descent, and the layer is batch *normalization*: named so because it
#   normalizes with the statistics of the current mini-batch. That is why the
#   same example gets a different output in another batch (largest change
#   1.187 above, checked again below).
# - **σ without ε.** The same notes first write the normalization as
#   $(x - \mu_B)/\sigma_B$. Without ε a constant feature gives 0/0 = NaN (the
#   ε section above); ε belongs inside the square root, $\sqrt{\sigma_B^2 + \varepsilon}$.
# - **"Four learned parameters", one of them σ.** The Keras notes say the
#   algorithm learns γ, β, μ and σ. The layer *stores* four vectors, but only
#   γ and β are learned by gradient descent; the other two are moving averages
#   of batch statistics, and the second is the moving *variance*, not a
#   standard deviation. Checked below on the layer trained for one step above.
# - **`use_bias=False` "to not use an activation function".** The Keras notes
#   explain the flag that way. It removes the dense layer's *bias*, which batch
#   norm would cancel anyway (its gradient is zero, shown above); the
#   activation is still applied, by the `Activation` layer after batch norm.
# - **A variance headed "Standard Deviation".** The Keras notes title their
#   second step "standard deviation" and give the formula of the variance
#   $\sigma_B^2$: on this lesson's first batch they differ by a factor of 5 on
#   the second feature (below).
# - **Formula typos.** In the Keras notes' third step the closing parenthesis
#   puts "$-\mu_B$" into the superscript of $x^{(i)}$; another notebook's mean
#   is summed over "$z^{(i(}$". The four steps at the top of this lesson give
#   the formulas correctly (checked against bnlib).
# - **"The whole training set" at test time.** The Keras notes have the network
#   normalize with statistics of the entire training set when it predicts.
#   Keras uses the moving averages; the paper averages many mini-batch
#   statistics after training, with the $N/(N-1)$ correction. The moving
#   averages can trail the exact statistics while the network learns (the lag
#   section above).

# %%
assert_true("the name: one example, two batches, two outputs", np.max(np.abs(in_a - in_b)) > 0.1,
            f"largest change {np.max(np.abs(in_a - in_b)):.3f}")
assert_true("sigma without eps: a constant feature gives NaN", np.all(np.isnan(no_eps[:, 0])))
_ = assert_close("the layer stores the moving variance: 0.99 * 1 + 0.01 * batch variance",
                 layer.moving_variance, 0.99 + 0.01 * batch_x.var(axis=0), 1e-14)
step_two = ((x - x.mean(axis=0)) ** 2).mean(axis=0)      # the notes' "standard deviation"
print("step 2's formula on the first batch:", show(step_two), "  standard deviations:",
      show(x.std(axis=0)))
_ = assert_close("step 2's formula is the variance", step_two, x.var(axis=0), 1e-13)

# %% [markdown]
# ## Key takeaways
#
# - Batch norm standardizes each feature with the **current mini-batch's**
#   mean and biased variance (ε inside the square root), then applies a learned
#   scale γ and shift β. It sits between the linear map and the activation.
# - With γ = √(σ_B²+ε) and β = μ_B the layer gives back the batch those
#   statistics came from, but not other batches; with the population
#   statistics, at inference, it is the identity for every input (the paper's
#   argument). Gradient descent picks γ and β to lower the loss, e.g. a
#   steep, shifted input for a sharp sigmoid decision.
# - ε keeps a constant feature finite in the forward pass (its output becomes
#   β), but amplifies the gradient it passes down by 1/√ε (about 32 for
#   Keras's 1e-3); outside the square root it would make the backward pass NaN.
# - A bias right before batch norm cancels exactly: drop it, β replaces it.
# - Inference cannot use batch statistics (one example would give all β); it
#   uses the moving mean and variance, exponential averages kept during
#   training. They are cheap, but they warm up from their start values and lag
#   behind a layer input that moves while the network learns, which costs
#   accuracy at inference until learning slows; the paper instead averages
#   mini-batch statistics after training, with the N/(N−1) correction.
# - The layer stores four vectors: γ and β learned by gradient descent, the
#   moving mean and variance learned by smoothing.
#
# ## Exercises
#
# **1. The training-mode forward pass.** Write `batchnorm_train(x, gamma, beta, eps)`
# for `x` of shape (N, D), returning the output of the four steps.

# %%
def batchnorm_train(x, gamma, beta, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_batchnorm_train(batchnorm_train)

# %% [markdown]
# **2. The inference-mode forward pass.** Write
# `batchnorm_inference(x, gamma, beta, moving_mean, moving_variance, eps)`. It
# must work for a single example (N = 1) too.

# %%
def batchnorm_inference(x, gamma, beta, moving_mean, moving_variance, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_batchnorm_inference(batchnorm_inference)

# %% [markdown]
# **3. The moving statistics.** Write
# `moving_update(moving_mean, moving_variance, x, momentum)` returning the new
# `(moving_mean, moving_variance)` after one training batch `x`, in the Keras
# convention (momentum is the weight on the old value).

# %%
def moving_update(moving_mean, moving_variance, x, momentum):
    raise NotImplementedError("replace with your code")


_ = exercises.check_moving_update(moving_update)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015,
#   [arXiv:1502.03167](https://arxiv.org/abs/1502.03167). Algorithm 1 is the
#   four steps; Algorithm 2 and §3.1 describe inference with
#   population statistics.
# - I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016,
#   §8.7.1 "Batch Normalization".
# - Keras documentation, [`BatchNormalization` layer](https://keras.io/api/layers/normalization_layers/batch_normalization/)
#   (momentum 0.99, epsilon 0.001, the four weights, `training=True/False`).
# - PyTorch documentation, [`torch.nn.BatchNorm1d`](https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html)
#   (the unbiased running variance and its momentum convention).
