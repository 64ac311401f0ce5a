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
#   and variance (two of the four vectors the layer stores) replace them.

# %%
import numpy as np

from bnlib import batchnorm, data
from bnlib.course import checks, plots
from bnlib.lessons.lesson03 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## Where batch norm sits, and why it says "batch"
#
# A plain dense layer does two things: a linear map $z = Wx + b$, then a
# nonlinearity $a = g(z)$.
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
# For a batch of $m$ examples and one feature (each feature is treated on its own):
#
# 1. batch mean: $\mu_B = \frac{1}{m}\sum_{i=1}^{m} x_i$
# 2. batch variance, the *biased* one (divide by $m$):
#    $\sigma_B^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i - \mu_B)^2$
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
# Every feature of $\hat{x}$ has mean 0 and standard deviation just under 1
# (exactly $\sqrt{\sigma^2/(\sigma^2+\varepsilon)}$; the third feature, whose
# spread is only about 0.06, is pulled furthest below 1 by ε). After step 4
# each feature has mean β and standard deviation close to γ. Now the same
# batch through `bnlib`:

# %%
out, cache, _, _ = batchnorm.batchnorm_forward(x, gamma, beta, np.zeros(3), np.ones(3),
                                               training=True, eps=eps)
assert_close("max |four steps - bnlib|", y, out, 1e-12)
assert_close("x_hat std vs sqrt(var / (var + eps))", x_hat.std(axis=0),
             np.sqrt(var / (var + eps)), 1e-12)
diff = assert_close("y means vs beta", y.mean(axis=0), beta, 1e-12)

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
# images. That is batch norm with one "feature" per pixel. As in the
# worksheet, γ = 1, β = 0 and ε = 1e-8. (Batch norm after a convolution is
# different: one statistic per *channel*, over all N·H·W values; lesson 09
# contrasts the two.)

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

# %%
fig = plots.images_and_histogram(batch, "The first 10 images, raw")

# %%
fig = plots.images_and_histogram(bn_images, "The same 10 images, batch-normalized per pixel")

# %% [markdown]
# Every pixel position now has mean 0 and variance 1 across the ten images
# (checked below, together with bnlib given `axis=(1, 2, 3)`, which keeps
# height, width and channel as features). Notice what per-pixel batch norm
# does *not* do: it does not standardize each image on its own. An image
# brighter than the batch's average stays brighter than the others after
# normalization, because each pixel is compared with the same pixel in the
# other nine images. That is why the histogram of the normalized values has
# separate clumps: each clump holds the pixels of images that are brighter or
# darker than the batch average by a similar amount.

# %%
params = np.ones((32, 32, 1)), np.zeros((32, 32, 1))
bn_lib = batchnorm.batchnorm_forward(batch, *params, np.zeros((32, 32, 1)), np.ones((32, 32, 1)),
                                     training=True, eps=1e-8, axis=(1, 2, 3))[0]
assert_close("max |by hand - bnlib|", bn_images, bn_lib, 1e-9)
assert_below("largest |per-pixel mean|", np.abs(bn_images.mean(axis=0)).max(), 1e-12)
assert_below("largest |per-pixel variance - 1|", np.abs(bn_images.var(axis=0) - 1).max(), 1e-6)
raw_means, bn_means = batch.mean(axis=(1, 2, 3)), bn_images.mean(axis=(1, 2, 3))
assert_true("the brightness order of the images is kept",
            np.array_equal(np.argsort(raw_means), np.argsort(bn_means)),
            f"brightest image {np.argmax(raw_means)} before and {np.argmax(bn_means)} after")

# %% [markdown]
# ## Why γ and β?
#
# Step 4 may look like it undoes the work of step 3: we standardize, then
# immediately rescale to some other mean and spread. The point is that we do
# not *know* that mean 0 and variance 1 is what the next layer needs. So we
# make the scale and the shift learnable and let gradient descent pick them.
#
# **First, nothing is lost.** With $\gamma = \sqrt{\sigma_B^2 + \varepsilon}$
# and $\beta = \mu_B$ the layer gives back its input exactly, so a network
# with batch norm can always represent what the network without it could:

# %%
gamma_id, beta_id = np.sqrt(var + eps), mu
y_id = batchnorm.batchnorm_forward(x, gamma_id, beta_id, zeros, ones, training=True, eps=eps)[0]
diff = assert_close("max |identity output - input|", y_id, x, 1e-12)

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
diff = assert_close("with eps the constant feature outputs beta", with_eps[:, 0],
                    np.full(4, 0.7), 1e-12)

# %% [markdown]
# With ε the numerator is 0 and the denominator is $\sqrt{\varepsilon}$, so
# $\hat{x} = 0$ and the output is simply β: finite, and harmless. One NaN
# would otherwise spread through every later layer and the loss. Keras uses
# ε = 1e-3 by default; it must sit *inside* the square root, where it also
# keeps the gradient (which divides by $\sqrt{\sigma^2 + \varepsilon}$) finite.

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
diff = assert_close("max |output with bias - without|", with_bias, no_bias, 1e-9)

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
diff = assert_below("largest |dL/db| = |sum of dL/dz over the batch|",
                    np.abs(dz.sum(axis=0)).max(), 1e-9)

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
# Where do $\mu$ and $\sigma^2$ come from? The most direct answer is the
# mean and variance of the whole training set, pushed through the trained
# network (the original paper does this). That needs an extra pass over all
# the data after training. The answer frameworks use is cheaper: keep a
# **moving mean and moving variance**, exponential moving averages of the batch
# statistics (lesson 02), updated for free on every training step:
#
# $$\mu \leftarrow m\,\mu + (1 - m)\,\mu_B, \qquad
# \sigma^2 \leftarrow m\,\sigma^2 + (1 - m)\,\sigma_B^2,$$
#
# with momentum $m$ = 0.99 in Keras. In a real network the inputs of a layer
# drift as the weights before it learn, and the moving averages favour
# recent batches, which is what we want. Their price is a warm-up: Keras
# starts them at mean 0 and variance 1, and they need a few multiples of
# $1/(1-m)$ steps to forget that start. Below, one feature whose training set
# (4,000 values from a distribution with mean 3 and standard deviation 2) is
# fed in shuffled batches of 32:

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
# $\sigma/\sqrt{B}$, and the moving average of them keeps a jitter of
# $\frac{\sigma}{\sqrt{B}}\sqrt{\frac{1-m}{1+m}}$ (lesson 02: an exponential average
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
# bigger batches (their spread is about $\sigma/\sqrt{B}$). The orange line
# is the moving statistic: it climbs from its start and then follows the
# dashed line, smoother for higher momentum.

# %% tags=["nbval-ignore-output"]
explore.statistics_explorer()

# %% [markdown]
# At the defaults (batch of 32, momentum 0.99), checked:

# %%
fig, text = explore.statistics_view(batch_size=32, momentum=0.99)
print(text)
run = explore.moving_statistics(0.99, 32, 500)
spread, predicted = run.batch_mean.std(), np.sqrt(run.train_var / 32)
assert_true("batch means scatter about sigma/sqrt(B)", abs(spread / predicted - 1) < 0.15,
            f"{spread:.3f} vs {predicted:.3f}")
diff = assert_below("|moving mean - training-set mean| after 500 steps",
                    abs(run.moving_mean[-1] - run.train_mean), 0.1)

# %% [markdown]
# Try a batch size of 2 or 4 in the explorer: the moving *variance* settles
# clearly below the training-set variance. Each batch variance divides by
# $B$, not $B - 1$, so on average it is $\frac{B-1}{B}\sigma^2$: for $B = 4$,
# only 75%. The normalization itself uses that biased variance on purpose
# (it makes each batch exactly standardized), but the moving variance is an
# *estimate* of the population variance. PyTorch therefore updates it with the
# unbiased $B-1$ version; Keras keeps the biased one (lesson 07 compares them).

# %%
for unbiased in (False, True):
    small = explore.moving_statistics(0.99, 4, 3000, unbiased=unbiased)
    ratio = small.moving_var[1000:].mean() / small.train_var
    print(f"batch of 4, {'unbiased' if unbiased else 'biased'} update: moving variance / "
          f"training-set variance = {ratio:.3f}")
    assert_below("|ratio - expected|", abs(ratio - (1.0 if unbiased else 3 / 4)), 0.05)

# %% [markdown]
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
diff = assert_close("moving mean = 0.99 * 0 + 0.01 * batch mean", layer.moving_mean,
                    0.01 * batch_x.mean(axis=0), 1e-12)

# %% [markdown]
# At inference (`training=False`) the layer uses the moving statistics and
# changes nothing, and each example's output depends on that example alone:

# %%
stored = layer.moving_mean.copy(), layer.moving_variance.copy()
alone = layer(batch_x[:1], training=False)
in_batch = layer(batch_x, training=False)[:1]
assert_close("example 0 alone vs inside its batch", alone, in_batch, 1e-12)
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
# ## Key takeaways
#
# - Batch norm standardizes each feature with the **current mini-batch's**
#   mean and biased variance (ε inside the square root), then applies a learned
#   scale γ and shift β. It sits between the linear map and the activation.
# - γ and β let the network undo the standardization (γ = √(σ²+ε), β = μ gives
#   the identity) or choose any other scale and shift; gradient descent picks
#   what lowers the loss, e.g. a steep, shifted input for a sharp sigmoid decision.
# - ε keeps a constant feature finite (its output becomes β).
# - A bias right before batch norm cancels exactly: drop it, β replaces it.
# - Inference cannot use batch statistics (one example would give all β); it
#   uses the moving mean and variance, exponential averages kept during
#   training (cheaper than, and close to, the full-training-set statistics
#   once warmed up).
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
