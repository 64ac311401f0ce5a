# %% [markdown]
# # 09 · Batch norm in convolutional networks
#
# Batch norm is used most in convolutional networks, yet so far this course has
# normalized only dense layers: one mean and one variance per feature, over the
# batch. A convolutional layer produces feature maps of shape (N, H, W, C), and
# batch norm after it does something different from what lesson 03 did to the
# worksheet's images. This lesson says what, builds it from scratch, trains a
# small CNN with and without it, checks it against Keras, and folds it away.
#
# **After this lesson you will be able to**
# - say which values batch norm averages over after a convolution (one mean and
#   variance per channel, over N·H·W values) and why, and tell it apart from
#   per-pixel statistics and from layer, instance and group norm;
# - measure how noisy a channel's batch statistics are, and explain why images
#   change the small-batch story of lesson 08;
# - write a convolution and spatial batch norm in NumPy, forward and backward,
#   and check them against numerical gradients;
# - train a small CNN with and without batch norm and read the result over
#   several seeds: speed, the usable learning rates, the cost per step;
# - match bnlib against Keras's `Conv2D` + `BatchNormalization` (outputs, moving
#   statistics, gradients), including the `axis` a channels-first layout needs;
# - fold an inference-mode batch norm into the convolution's kernel and bias.

# %%
import numpy as np

from bnlib import batchnorm, conv, data, nn
from bnlib.course import plots, seeds, timing, widgets
from bnlib.course.checks import assert_below, assert_close, assert_true
from bnlib.gradcheck import numerical_gradient, rel_error
from bnlib.lessons.lesson09 import exercises, explore

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1 · Which axes, and why
#
# A convolution slides one small kernel over the whole image. Channel $c$ of
# its output is therefore *the same feature* (say, "a vertical edge here")
# measured at every position. Ioffe and Szegedy (2015, §3.2) draw the
# conclusion for batch norm: values of one feature map at different positions
# should be normalized in the same way, so each channel gets **one** mean and
# **one** variance, computed jointly over the batch and all positions, that
# is over $N \cdot H \cdot W$ values, and one learned pair $\gamma_c, \beta_c$.
# The paper calls $N \cdot H \cdot W$ the *effective mini-batch size*.
#
# That is not what the worksheet's case 3a did (lesson 03): there every pixel
# position had its own mean and variance over the $N$ images, which is how a
# *dense* layer's batch norm treats a flattened image. Other normalizations
# pick still other sets of values; the cubes show which values share one mean
# and variance (N examples into the page, C channels across, the H·W positions
# flattened upwards):
#
# ![Which values share one mean and variance: batch norm, per pixel, layer norm, instance norm, group norm](../images/norm-axes.png)
#
# (The figure is drawn by `bnlib.lessons.lesson09.diagram`.) The same five, on
# a real batch: 16 digits through a random 3×3 convolution with 8 output
# channels, the input a first batch-norm layer would see.

# %%
x = explore.feature_maps()[:16]
print("feature maps x:", x.shape, "(N, H, W, C)")
print(f"{'normalization':<15}{'statistics':>12}{'how many':>10}{'values each':>13}")
for kind in explore.NORM_KINDS:
    mean, var, count = explore.statistics(x, kind, groups=4)
    print(f"{kind:<15}{str(mean.shape):>12}{mean.size:>10}{count:>13}")
    assert mean.size * count == x.size
    _ = assert_close(f"  {kind}: bnlib vs (x - mean) / sqrt(var + eps) with these statistics",
                     explore.bnlib_normalize(x, kind, groups=4),
                     explore.normalize_by_formula(x, kind, groups=4), 1e-12)

# %%
shapes = {kind: explore.statistics(x, kind, groups=4)[0].shape for kind in explore.NORM_KINDS}
assert shapes == {"batch": (8,), "per-pixel": (8, 8, 8), "layer": (16,), "instance": (16, 8),
                  "group": (16, 4)}
print("batch norm: one mean per channel, each over N*H*W =", 16 * 8 * 8, "values")
print("per pixel: one mean per position and channel, each over N =", 16, "values")

# %% [markdown]
# The printout is the picture in numbers. Batch norm keeps 8 statistics, one per
# channel, each over 1,024 values; the per-pixel version keeps 512, each over
# only 16. Layer, instance and group norm take their statistics inside each
# example, so they keep one set per example and never look at the rest of the
# batch (lesson 08).
#
# **Why per channel and not per pixel?** Three reasons, all following from the
# shared kernel:
#
# - *The same feature is treated the same everywhere.* With per-pixel
#   statistics, an edge in the top-left corner and the same edge in the middle
#   would be rescaled differently, which undoes what sharing the kernel bought.
# - *Parameters.* Per channel, γ and β have shape (C,); per pixel they would have
#   shape (H, W, C), tying the layer to one image size.
# - *Statistics.* Each channel statistic pools N·H·W values, so it is far less
#   noisy than a per-pixel one at the same batch size. How much less is the next
#   section.
#
# > **What the worksheet's case 3 is, and is not.** The worksheet
# > batch-normalizes images with `mean(axis=0)`: one statistic per pixel, over
# > the batch. Nothing is wrong with the arithmetic, but it is the batch norm of
# > a dense layer fed with flattened pixels, not the batch norm of a
# > convolutional network. Keras's `BatchNormalization()` on an (N, H, W, C)
# > tensor keeps one statistic per channel, as Ioffe and Szegedy prescribe for
# > convolutions. On the worksheet's 10 images (one channel):

# %%
first10 = data.random_images()[:10]
for label, axis, shape in (("per pixel (worksheet)", (1, 2, 3), first10.shape[1:]),
                           ("per channel (conv batch norm)", -1, (1,))):
    out, cache, _, _ = batchnorm.batchnorm_forward(first10, np.ones(shape), np.zeros(shape),
                                                   np.zeros(shape), np.ones(shape),
                                                   training=True, axis=axis, eps=1e-8)
    n_stats = cache.inv_std.size
    print(f"{label:30s}: {n_stats:5d} statistics of {first10.size // n_stats:5d} values each")
assert cache.inv_std.size == 1 and first10.size == 10 * 32 * 32

# %% [markdown]
# ## 2 · How noisy is a channel's batch statistic?
#
# Lesson 08 measured the noise of a dense layer's batch mean: for N examples it
# wanders by about $1/\sqrt{N}$ population standard deviations, and at N = 2 every
# normalized value is ±1. A channel statistic pools N·H·W values, so one might
# expect $1/\sqrt{N H W}$. But the H·W values of one image are not independent
# draws: they come from the same digit. What decides the noise is how much the
# **images' own averages** differ: the batch mean is the average of N per-image
# means, so for images drawn at random its spread is their spread divided by
# $\sqrt{N}$.
#
# The explorer measures it on channel 0 of the feature maps above, over 2,000
# random batches of the 1,347 training digits. "Feature map H = W" crops the
# maps to their central H×W pixels: 1×1 leaves one value per image, as a dense
# layer has. Left: one pixel normalized with each batch's statistics (training
# mode) against the population statistics that inference mode approximates.
# Right: the spread of the batch mean against N.

# %% tags=["nbval-ignore-output"]
explore.noise_explorer()

# %% [markdown]
# The explorer's starting point, checked:

# %%
print(widgets.readout(explore.NoiseScene, batch_size=8, size=8))
s8 = explore.noise_summary(8, 8)
assert abs(s8["spread"] / s8["image_law"] - 1) < 0.1
assert s8["spread"] < s8["iid_law"] < s8["per_image_law"]

# %% [markdown]
# With one value per image (1×1) we are back to lesson 08: the $1/\sqrt{N}$ law.
# With the full 8×8 maps the batch mean is far steadier at every batch size:

# %%
print(f"{'N':>4} {'1x1: spread':>12} {'1/sqrt(N)':>10} {'8x8: spread':>12} "
      f"{'1/sqrt(64N)':>12} {'one pixel, 1x1':>15} {'one pixel, 8x8':>15}")
for n in explore.BATCH_GRID:
    one, full = explore.noise_summary(n, 1), explore.noise_summary(n, 8)
    print(f"{n:4d} {one['spread']:12.3f} {one['per_image_law']:10.3f} {full['spread']:12.3f} "
          f"{full['iid_law']:12.3f} {one['output_spread']:15.3f} {full['output_spread']:15.3f}")
    assert abs(one["spread"] / one["per_image_law"] - 1) < 0.1
    assert full["spread"] < full["iid_law"]

# %% [markdown]
# ("one pixel" is the spread of one pixel's normalized value across batches, the
# train/inference gap of lesson 08.) On these digits a channel mean over 8×8 maps
# is even steadier than 64·N independent values would make it: the digits are
# centred, so most of a channel's variation is *within* each image (dark border,
# bright strokes) and every image has roughly the same average. At N = 2 one
# pixel's normalized value moves by about 6%, where a dense layer's collapses to
# ±1. Is that a property of channel 0? The claim, on all 8 channels of five
# random convolutions:

# %%
noise = explore.noise_claim(seeds=explore.TABLE_SEEDS_NOISE)
worst_iid, worst_dense = noise["to_iid"].max(), noise["to_per_image"].max()
print(f"8x8 maps, N = 2 and 16, 8 channels x {len(explore.TABLE_SEEDS_NOISE)} convolutions:")
print(f"  spread of the batch mean / 1/sqrt(64 N): {noise['to_iid'].min():.2f} to {worst_iid:.2f}")
print(f"  spread of the batch mean / 1/sqrt(N):    {noise['to_per_image'].min():.3f} to "
      f"{worst_dense:.3f}")
print(f"  one pixel's spread at N = 2: up to {noise['output_spread'][..., 0].max():.2f}")
assert_true("never more than 1.5x the independent-values law", worst_iid < 1.5)
assert_true("at least 5x steadier than one value per image at the same N", worst_dense < 0.2)
assert_true("one pixel moves by less than 0.2 at N = 2", noise["output_spread"].max() < 0.2)
worst_two = noise["to_per_image"][..., 0].max() / np.sqrt(2)
assert_true("at N = 2 the batch mean wanders less than a dense layer's at N = 64",
            worst_two < 1 / np.sqrt(64), f"at most {worst_two:.3f} vs {1 / np.sqrt(64):.3f}")

# %% [markdown]
# So the count N·H·W is a fair guide here (at most about 1.2 times the noise of
# that many independent values, often far less), and images do change lesson
# 08's small-batch story: with 8×8 maps, the batch mean of 2 images wanders less
# than a dense layer's over 64. Do not read it as "small batches are fine for
# CNNs", though. Deep layers have small maps (7×7 at the end of a ResNet-50),
# natural photographs are not centred like these digits, and the weights still
# learn under batch-dependent noise. Wu and He (2018) report that ResNet-50's
# ImageNet error with batch norm rises steeply as the batch per GPU shrinks from
# 32 towards 2 images (their Figure 1), and that at 2 images group norm's error
# is 10.6 points lower.
#
# ## 3 · From scratch: a convolution and spatial batch norm
#
# **The convolution.** Deep-learning "convolution" is cross-correlation: output
# pixel $(i, j)$ of channel $o$ is the sum over the 3×3×C window around input
# pixel $(i, j)$ times filter $o$. NumPy's `sliding_window_view` gives every
# window as a view (no copy); one `einsum` does the rest. Written out for 3×3
# kernels and 'same' padding, then compared with `bnlib.conv.conv2d_forward`,
# which gathers the windows into a matrix (im2col) and supports strides and
# other paddings:

# %%
def conv3x3_same(x, kernel):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))                  # zeros around H and W
    windows = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    return np.einsum("nhwcab,abco->nhwo", windows, kernel)   # windows: (N, H, W, C, 3, 3)


x = rng.normal(size=(4, 6, 5, 3))
kernel = rng.normal(size=(3, 3, 3, 2))
z, conv_cache = conv.conv2d_forward(x, kernel)
print("x", x.shape, "kernel", kernel.shape, "->", z.shape)
_ = assert_close("by hand vs bnlib.conv.conv2d_forward", conv3x3_same(x, kernel), z, 1e-12)

# %% [markdown]
# The backward pass: with the windows as rows of a matrix `cols` and `dout` as a
# (N·H·W, C_out) matrix, $dK = \text{cols}^\top \, d\text{out}$, and the gradient
# of each window, $d\text{out}\,K^\top$, is added back onto the pixels it came
# from. Checked against centred differences in float64 (the convolution is
# linear, so a step of 1e-3 is exact up to round-off):

# %%
dout = rng.normal(size=z.shape)
dx, dkernel, _ = conv.conv2d_backward(dout, conv_cache)
num_dx = numerical_gradient(lambda v: conv.conv2d_forward(v, kernel)[0], x.copy(), dout, h=1e-3)
num_dk = numerical_gradient(lambda v: conv.conv2d_forward(x, v)[0], kernel.copy(), dout, h=1e-3)
_ = assert_below("relative error of dx", rel_error(dx, num_dx), 1e-8)
_ = assert_below("relative error of dkernel", rel_error(dkernel, num_dk), 1e-8)

# %% [markdown]
# **Spatial batch norm** needs no new code. Per channel over N·H·W values is
# ordinary batch norm of the (N·H·W, C) matrix whose rows are all the pixels of
# all the images (CS231n's trick): reshape, normalize, reshape back. bnlib does
# it directly with `axis=-1`, the kept channel axis, as Keras does:

# %%
gamma, beta = rng.uniform(0.5, 2.0, 2), rng.normal(size=2)
mean0, var0 = np.zeros(2), np.ones(2)
as_rows = batchnorm.batchnorm_forward(z.reshape(-1, 2), gamma, beta, mean0, var0,
                                      training=True)[0].reshape(z.shape)
y, bn_cache, moving_mean, moving_variance = batchnorm.batchnorm_forward(
    z, gamma, beta, mean0, var0, training=True, axis=-1)
print("gamma, beta, moving mean, moving variance:", gamma.shape, beta.shape,
      moving_mean.shape, moving_variance.shape)
_ = assert_close("(N*H*W, C) matrix vs axis=-1 on (N, H, W, C)", as_rows, y, 1e-12)
_ = assert_below("largest |mean of a channel after BN - beta|",
                 np.abs(y.mean(axis=(0, 1, 2)) - beta).max(), 1e-12)

# %% [markdown]
# The backward pass is the one of lesson 04 with sums over N, H and W. The whole
# block conv → batch norm → ReLU, every gradient checked numerically:

# %%
def block(x, kernel, gamma, beta):
    z, _ = conv.conv2d_forward(x, kernel)
    y = batchnorm.batchnorm_forward(z, gamma, beta, mean0, var0, training=True)[0]
    return np.maximum(y, 0.0)


dout = rng.normal(size=z.shape)
d_y = dout * (y > 0)                                        # through the ReLU
dz, dgamma, dbeta = batchnorm.batchnorm_backward(d_y, bn_cache)
dx, dkernel, _ = conv.conv2d_backward(dz, conv_cache)
for name, grad, arg in (("dx", dx, x), ("dkernel", dkernel, kernel), ("dgamma", dgamma, gamma),
                        ("dbeta", dbeta, beta)):
    args = {"x": x, "kernel": kernel, "gamma": gamma, "beta": beta}
    key = name[1:]
    num = numerical_gradient(lambda v: block(**{**args, key: v}), arg.copy(), dout)
    _ = assert_below(f"relative error of {name}", rel_error(grad, num), 1e-6)

# %% [markdown]
# ## 4 · A small CNN on the digits, with and without batch norm
#
# `bnlib.cnn.CNN` stacks the pieces: three 3×3 convolutions with 8, 16 (stride 2,
# so 8×8 becomes 4×4) and 32 channels, each followed by batch norm (or not) and
# a ReLU, then global average pooling (one number per channel) and a dense layer
# to 10 logits. With batch norm the convolutions have no bias (β replaces it).
# Plain SGD, batches of 32, 400 steps (about 9.5 passes over the 1,347 training
# digits), He initialization. Batch norm's momentum is 0.9 here, not Keras's
# 0.99: the 0.99 moving averages need about 300 steps to warm up (lesson 07),
# and the test accuracy of a 400-step run should measure the weights, not the
# warm-up.

# %%
split = explore.digit_images()
plain_net, bn_net = explore.make_model(False), explore.make_model(True)
print("images:", split.x_train.shape, "train,", split.x_test.shape, "test")
print("plain:     ", plain_net.param_names(), plain_net.n_params(), "parameters")
print("batch norm:", bn_net.param_names(), bn_net.n_params(), "parameters")
assert bn_net.n_params() - plain_net.n_params() == sum(explore.CHANNELS)  # 2C added, C removed

# %% [markdown]
# Every training below was run for five seeds (each seed sets the weights and
# the order of the batches) and stored in a table, `runs.npz` beside the lesson's
# code; training all 60 takes minutes, not the seconds a lesson can spend.
# `python -m bnlib.lessons.lesson09.explore` trains them again with exactly the
# code shown, and the cell after the figures checks one against a fresh training.
# At learning rate 0.3, a rate both networks train at:

# %%
fig = explore.curves_figure(lr=0.3)

# %%
speed = explore.speed_claim(explore.TABLE_SEEDS, lr=0.3, step=100)
for label, r in speed.items():
    print(f"{label:10s} at step 100: test accuracy {seeds.spread(r['accuracy'])}, "
          f"training loss {seeds.spread(r['loss'])}")
    print(f"{'':10s} at step 400: test accuracy {seeds.spread(r['final_accuracy'])}")
plain, bn = speed["plain"], speed["batch norm"]
assert_true("at step 100 the training loss is lower with batch norm on every seed",
            bn["loss"].max() < plain["loss"].min(),
            f"worst BN seed {bn['loss'].max():.2f} vs best plain seed {plain['loss'].min():.2f}")
assert_true("and the median test accuracy is more than 20 points higher",
            np.median(bn["accuracy"]) > np.median(plain["accuracy"]) + 0.2)
assert_true("at step 400 both end within 5 points of each other (median)",
            abs(np.median(bn["final_accuracy"]) - np.median(plain["final_accuracy"])) < 0.05)

# %% [markdown]
# With batch norm the network learns much faster at this rate: after 100 steps
# every batch-norm seed has a lower loss than every plain seed. By step 400 the
# plain network has nearly caught up on test accuracy. (The thin lines show how much
# a single run can jump around; a claim from one seed would be a coin toss.)
#
# ### Which learning rates does each network train at?
#
# We call a run **trains** if its mean training loss over the last 50 steps is
# below 0.5, **does not learn** if it is above 2 (chance level, guessing among 10
# digits, is ln 10 ≈ 2.30), and **slow** in between.

# %%
losses = explore.lr_claim(explore.TABLE_SEEDS)
fig = explore.sweep_figure(losses)

# %%
for label, bn_on in (("plain", False), ("batch norm", True)):
    verdicts = ["/".join(str(v) for v in np.unique(
        [explore.verdict(explore.history(bn_on, lr, s)) for s in explore.TABLE_SEEDS]))
        for lr in explore.LR_GRID]
    print(f"{label:10s}", "  ".join(f"lr {lr:g}: {v}" for lr, v in zip(explore.LR_GRID, verdicts)))
ok = {label: [lr for lr, good in zip(explore.LR_GRID, explore.trains_everywhere(rows)) if good]
      for label, rows in losses.items()}
print("trains on every seed at:", ok)
assert_true("every learning rate the plain network trains at, batch norm trains at too",
            set(ok["plain"]) <= set(ok["batch norm"]))
assert_true("batch norm's largest such rate is at least 3x the plain network's",
            max(ok["batch norm"]) >= 3 * max(ok["plain"]),
            f"{max(ok['batch norm']):g} vs {max(ok['plain']):g}")
at3 = explore.LR_GRID.index(3.0)
assert_true("at lr 3 batch norm trains on every seed while the plain network learns nothing",
            losses["batch norm"][:, at3].max() < explore.TRAINS_LOSS
            and losses["plain"][:, at3].min() > explore.STUCK_LOSS)

# %% [markdown]
# Batch norm widens the usable range on both sides: from 0.1 to 3 on every seed,
# against 0.3 (and 1 on four seeds of five) without it. Both fail at 10. This is
# the dense-network result of lesson 05, now for convolutions.
#
# What goes wrong at learning rate 3 without batch norm? Every run also recorded,
# at each evaluation, the fraction of each layer's ReLU inputs that are positive
# on 256 training images (a ReLU whose input is negative outputs 0 and passes no
# gradient back):

# %%
alive = explore.relu_claim(explore.TABLE_SEEDS, lr=3.0)
for label, rows in alive.items():
    print(f"{label:10s} lr 3, after 400 steps: positive ReLU inputs per layer, median over seeds "
          f"{np.round(np.median(rows, axis=0), 2)}, last layer {seeds.spread(rows[:, 2])}")
assert_true("without batch norm the last convolution's ReLUs are all dead on every seed",
            alive["plain"][:, 2].max() < 0.01)
assert_true("with batch norm every layer keeps more than 10% of them active",
            alive["batch norm"].min() > 0.1)

# %% [markdown]
# Without batch norm the large steps push the pre-activations below zero: after
# 25 steps only a few percent to a fifth of the last convolution's are still
# positive, and by step 400 none, for every unit, position and image (the first
# two layers keep at most 11%). A layer that outputs zeros passes no gradient
# back, so the network is stuck at chance. With batch norm each channel is
# re-standardized at every step, and 30% to 55% of the values stay positive in
# every layer, whatever the steps did to the weights.
#
# At learning rate 3 the batch-norm runs have a low training loss, yet their
# test accuracy can jump from one evaluation to the next (the explorer below
# shows it); one seed here ends at 74%. Inference mode normalizes with the
# moving averages, and when the weights move this fast the averages describe the
# network of some steps ago. Replace them by *precise* statistics of the final
# network, one pass over the training set (lesson 08), and the test accuracy
# follows the training loss again:

# %%
lr3 = explore.precise_claim(explore.TABLE_SEEDS, lr=3.0)
print(f"batch norm, lr 3: test accuracy with the moving statistics {seeds.spread(lr3['inference'])}")
print(f"{'':16s}  with precise statistics    {seeds.spread(lr3['precise'])}")
assert_true("with precise statistics every seed reaches 95%", lr3["precise"].min() >= 0.95)
assert_true("and no seed loses more than a point by the switch",
            np.all(lr3["precise"] >= lr3["inference"] - 0.01))

# %% [markdown]
# The table is the code's output, not a copy: a fresh training of the batch-norm
# network at lr 0.3, seed 0, against its row (this setting is a stable function
# of its inputs: rounding differences do not grow, which the tests check):

# %%
trained, fresh = explore.run(True, 0.3, 0)
row = explore.history(True, 0.3, 0)
_ = assert_close("loss of every step: table vs fresh training", row.loss, fresh.loss, 1e-9)
_ = assert_close("test accuracy at every evaluation: table vs fresh", row.test_accuracy,
                 fresh.test_accuracy, 1e-9)

# %% [markdown]
# What does batch norm cost per step? Timed here on this machine (timings vary
# from run to run, so they are not checked):

# %% tags=["nbval-ignore-output"]
t_plain, t_bn = explore.step_time(False), explore.step_time(True)
print(f"one SGD step of 32 images: plain {1e3 * t_plain:.2f} ms, with batch norm "
      f"{1e3 * t_bn:.2f} ms (x{t_bn / t_plain:.2f})")

# %% [markdown]
# Batch norm makes each step dearer (two more passes over every feature map,
# forward and backward) but needs far fewer steps at a given learning rate, and
# allows larger ones.
#
# ### Explorer: training at each learning rate
#
# Pick a learning rate: the five seeds of both networks, from the table.

# %% tags=["nbval-ignore-output"]
explore.train_explorer()

# %% [markdown]
# Its starting point, checked:

# %%
text = widgets.readout(explore.TrainScene, lr=0.3)
print(text)
assert text == explore.train_readout(0.3) and "5 trains" in text

# %% [markdown]
# ## 5 · The same in Keras: `Conv2D` then `BatchNormalization()`
#
# Keras's `BatchNormalization()` has `axis=-1`: on channels-last feature maps
# (N, H, W, C) it keeps the channel axis and averages over the other three, the
# same rule as bnlib's `axis=-1`. We give a Keras `Conv2D(use_bias=False)` and a
# `BatchNormalization()` (momentum 0.99, ε = 1e-3) the weights of a bnlib
# convolution and batch norm, feed both the same 200 training batches of digits
# in training mode, and compare outputs, moving statistics and gradients, in
# float32.

# %%
from bnlib.lessons.lesson09 import keras_conv

steps = 200
rows = nn.batch_indices(len(split.x_train), steps, 32)
batches = split.x_train[rows].astype(np.float32)                 # (200, 32, 8, 8, 1)
k1 = explore.random_kernel(1, 8).astype(np.float32)
g1, b1 = rng.uniform(0.5, 2.0, 8).astype(np.float32), rng.normal(size=8).astype(np.float32)
dout = rng.normal(size=(32, 8, 8, 8)).astype(np.float32)
pair = keras_conv.side_by_side(batches, k1, g1, b1, dout)
print("Keras layer weights:", pair["weight_shapes"])
assert all(shape == (8,) for shape in pair["weight_shapes"].values())

# %%
_ = assert_below("largest |bnlib - Keras| of the outputs over 200 steps",
                 pair["output_diff"].max(), 2e-5)
for name, ours, theirs in zip(("moving mean", "moving variance"), pair["moving"]["bnlib"],
                              pair["moving"]["keras"]):
    _ = assert_close(f"{name} after 200 steps", ours, theirs, 1e-6)
for name, ours in pair["grads"]["bnlib"].items():
    theirs = pair["grads"]["keras"][name]
    _ = assert_below(f"{name}: max |bnlib - Keras| / max |Keras|",
                     np.abs(ours - theirs).max() / np.abs(theirs).max(), 1e-5)

# %% [markdown]
# Outputs, the moving statistics after 200 updates and all four gradients agree
# to float32 round-off. The layer's four weights, γ, β and the two moving
# statistics, have shape (C,) = (8,): one per channel, whatever the image size.
#
# **Channels first.** PyTorch, and Keras with `data_format="channels_first"`, lay
# feature maps out as (N, C, H, W). The channels are then axis 1, and the layer
# must be told: `BatchNormalization(axis=1)`. With the default `axis=-1` it
# keeps the last axis, the image width W, and normalizes per column of pixels:

# %%
maps = explore.feature_maps()[:32, :, :6]           # (32, 8, 6, 8): W = 6, C = 8
reference = batchnorm.batchnorm_forward(maps, np.ones(8), np.zeros(8), np.zeros(8), np.ones(8),
                                        training=True, axis=-1)[0]
out1, shape1 = keras_conv.channels_first_batchnorm(maps, 1)
out_last, shape_last = keras_conv.channels_first_batchnorm(maps, -1)
print(f"BatchNormalization(axis=1) on (N, C, H, W):  gamma shape {shape1}")
print(f"BatchNormalization(axis=-1) on (N, C, H, W): gamma shape {shape_last}")
assert shape1 == (8,) and shape_last == (6,)
_ = assert_close("axis=1 on channels first vs bnlib axis=-1 on channels last", out1, reference,
                 1e-5)
gap = np.abs(out_last - reference).max()
assert_true("with the default axis=-1 some outputs differ by more than 1", gap > 1)

# %% [markdown]
# ## 6 · Folding batch norm into the convolution
#
# At inference, batch norm is a fixed affine map per channel:
# $y_c = \gamma_c (z_c - \mu_c)/\sigma_c + \beta_c$ with $\sigma_c = \sqrt{v_c + \varepsilon}$
# from the moving statistics. The convolution is linear in its kernel, so
# scaling **output channel c's filter**, `kernel[..., c]`, by $\gamma_c/\sigma_c$
# scales $z_c$, and the rest goes into the bias:
#
# $$K'_{\cdot,\cdot,\cdot,c} = K_{\cdot,\cdot,\cdot,c}\,\frac{\gamma_c}{\sigma_c}, \qquad
# b'_c = \frac{\gamma_c\,(b_c - \mu_c)}{\sigma_c} + \beta_c$$
#
# (with $b_c = 0$ for a convolution without bias). `bnlib.conv.fold_into_conv`
# does this for one layer, `explore.fold_cnn` for the whole trained network
# (batch norm, lr 0.3, seed 0, trained above): the result is a plain CNN.

# %%
folded = explore.fold_cnn(trained)
print("folded network:", folded.param_names(), "norms:", folded.norms)
x_test = split.x_test
_ = assert_close("logits: folded vs batch-norm network, inference mode (bnlib)",
                 folded.forward(x_test, training=False), trained.forward(x_test, training=False),
                 1e-9)

# %% [markdown]
# The same in Keras: the trained network copied into a Keras model with
# `BatchNormalization` layers, and the folded one into a model of plain
# `Conv2D` layers with bias.

# %%
keras_bn, keras_folded = keras_conv.keras_twin(trained), keras_conv.keras_twin(folded)
print("Keras models:", len(keras_bn.layers), "and", len(keras_folded.layers), "layers")
p_bn = keras_bn(x_test.astype(np.float32), training=False).numpy()
p_folded = keras_folded(x_test.astype(np.float32), training=False).numpy()
_ = assert_close("logits: Keras with batch norm vs bnlib", p_bn,
                 trained.forward(x_test, training=False), 5e-5)
_ = assert_close("logits: Keras folded vs Keras with batch norm", p_folded, p_bn, 5e-5)
same = np.mean(p_bn.argmax(axis=1) == p_folded.argmax(axis=1))
assert_true(f"the same predicted digit for all {len(x_test)} test images", same == 1.0)

# %% [markdown]
# What does it save? The batch-norm layers are gone, and with them a pass over
# every feature map. Timed on 9,000 images (eager Keras calls, the same under
# `tf.function`, which is what `predict` runs) and on 1,800 with bnlib; timings
# vary from run to run, so they are not checked:

# %% tags=["nbval-ignore-output"]
big = np.tile(x_test, (20, 1, 1, 1)).astype(np.float32)
fast_bn, fast_folded = keras_conv.graph_function(keras_bn), keras_conv.graph_function(keras_folded)
timings = {"Keras, eager": (lambda: keras_bn(big, training=False),
                            lambda: keras_folded(big, training=False)),
           "Keras, tf.function": (lambda: fast_bn(big), lambda: fast_folded(big)),
           "bnlib": (lambda: trained.forward(big[:1800], training=False),
                     lambda: folded.forward(big[:1800], training=False))}
for name, (with_bn, without) in timings.items():
    t_bn, t_folded = timing.best_time(with_bn, 3), timing.best_time(without, 3)
    print(f"{name:20s} with batch norm {1e3 * t_bn:7.1f} ms, folded {1e3 * t_folded:7.1f} ms, "
          f"speed-up x{t_bn / t_folded:.2f}")

# %% [markdown]
# ## Key takeaways
#
# - After a convolution, batch norm keeps **one mean and variance per channel**,
#   over the N·H·W values of the batch, and one γ and β per channel: weights of
#   shape (C,). Per-pixel statistics (the worksheet's case 3) are a dense layer's
#   batch norm. Layer, instance and group norm take their statistics inside each
#   example instead.
# - A channel statistic pools N·H·W values, but the pixels of one image are not
#   independent: its noise is the spread of the images' averages over √N. On
#   the digits it is at most about 1.2 times what N·H·W independent values give,
#   so the batch mean of 2 images with 8×8 maps wanders less than a dense layer's
#   over 64 examples.
# - Spatial batch norm is ordinary batch norm of the (N·H·W, C) matrix of pixels:
#   `axis=-1` in bnlib and Keras. The convolution itself is an im2col matrix
#   product; both backward passes check against numerical gradients.
# - On a small CNN, over five seeds: batch norm learns much faster at the same
#   rate and trains on every seed at learning rates from 0.1 to 3, where the
#   plain network does so only at 0.3; at 3 the plain network's ReLUs die. Each
#   step costs more, and at large rates the moving statistics can lag behind the
#   weights (precise statistics repair it).
# - Keras's `Conv2D` + `BatchNormalization()` compute what bnlib computes;
#   channels-first data needs `BatchNormalization(axis=1)`.
# - At inference, fold batch norm into the convolution: scale each *output*
#   channel's filter by γ/σ and move the rest into the bias.
#
# ## Exercises
#
# **1. Spatial batch norm.** Write `spatial_batchnorm(x, gamma, beta, eps)` for x
# of shape (N, H, W, C) in training mode: one mean and (biased) variance per
# channel, γ and β of shape (C,).

# %%
def spatial_batchnorm(x, gamma, beta, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_spatial_batchnorm(spatial_batchnorm)

# %% [markdown]
# **2. Fold batch norm into a convolution.** Write
# `fold_conv(kernel, bias, gamma, beta, moving_mean, moving_variance, eps)` for a
# kernel of shape (KH, KW, C_in, C_out) and vectors of shape (C_out,), returning
# `(new_kernel, new_bias)`.

# %%
def fold_conv(kernel, bias, gamma, beta, moving_mean, moving_variance, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_fold_conv(fold_conv)

# %% [markdown]
# **3. Channels first.** Write `channels_first_batchnorm(x, gamma, beta, eps)`:
# exercise 1 for x of shape (N, C, H, W).

# %%
def channels_first_batchnorm(x, gamma, beta, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_channels_first_batchnorm(channels_first_batchnorm)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015, PMLR 37:448–456
#   (§3.2: batch norm in convolutional networks, per feature map over the batch
#   and all locations, the effective mini-batch m·p·q).
# - Y. Wu and K. He, *Group Normalization*, ECCV 2018 (Figure 2, the cube
#   picture of batch, layer, instance and group norm; ResNet-50 on ImageNet, where
#   batch norm's error grows as the batch per device shrinks and group norm's
#   does not).
# - D. Ulyanov, A. Vedaldi and V. Lempitsky, *Instance Normalization: The Missing
#   Ingredient for Fast Stylization*, arXiv:1607.08022, 2016.
# - J. L. Ba, J. R. Kiros and G. E. Hinton, *Layer Normalization*,
#   arXiv:1607.06450, 2016.
# - K. He, X. Zhang, S. Ren and J. Sun, *Delving Deep into Rectifiers*, ICCV 2015
#   (the He initialization used here).
# - CS231n, *Convolutional Neural Networks for Visual Recognition*, assignment 2:
#   spatial batch norm through the (N·H·W, C) reshape.
# - Keras documentation: `keras.layers.Conv2D`, `keras.layers.BatchNormalization`
#   (its `axis` argument).
