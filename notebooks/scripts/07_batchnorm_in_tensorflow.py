# %% [markdown]
# # 07 · Batch norm in TensorFlow and Keras
#
# You have built batch normalization from scratch (lessons 03 and 04). Real
# projects use a framework's layer, so this lesson opens the Keras layer up and
# holds it against `bnlib`, number by number.
#
# **After this lesson you will be able to**
# - write the worksheet's normalizations in TensorFlow 2 (eager, no sessions) with
#   `tf.nn.moments` and `tf.nn.batch_normalization`;
# - name the Keras layer's defaults and its four weight vectors, and say which are
#   learned by gradient descent and which by smoothing;
# - show that bnlib and Keras agree on outputs, moving statistics and gradients;
# - translate a `momentum` setting between Keras, PyTorch, CS231n and the paper;
# - say which values share one statistic when the Keras layer sees images;
# - freeze batch norm correctly when fine-tuning (`trainable=False` vs `training=False`,
#   and when a recompile is needed);
# - build the two classic Keras layouts (batch norm after the activation, or before it
#   with `use_bias=False`) and fold batch norm into the dense layers for inference.

# %%
import numpy as np

from bnlib import batchnorm, data, normalize
from bnlib.course import checks, plots, seeds, timing, widgets
from bnlib.lessons.lesson07 import exercises, explore
from bnlib.ema import convert_momentum

plots.use_course_style()
rng = np.random.default_rng(0)
tf, keras = explore.tf_keras()   # imports TensorFlow quietly, deterministic ops
print("TensorFlow", tf.__version__, "| Keras", keras.__version__)

# %% [markdown]
# ## 1 · The worksheet in TensorFlow 2
#
# The original worksheet was written for TensorFlow 1: it opened a session, built
# a graph and called `.eval()` to get numbers out. TensorFlow 2 runs eagerly, so
# every operation returns a tensor at once. The translation is mechanical:
#
# | TensorFlow 1 | TensorFlow 2 |
# |---|---|
# | `tf.InteractiveSession()`, `sess.run(t)`, `t.eval()` | nothing to open; `t.numpy()` |
# | `tf.set_random_seed(s)` | `tf.random.set_seed(s)` or `keras.utils.set_random_seed(s)` |
# | `tf.ConfigProto(device_count={"GPU": 0})` | `tf.config.set_visible_devices([], "GPU")` |
# | `tf.contrib.layers.batch_norm` | `keras.layers.BatchNormalization` |
#
# The data: 30 random 32×32 one-channel "images", each with its own brightness
# (offset) and contrast (spread), the same recipe as lesson 01. Shape (N, H, W, C).

# %%
images = data.random_images()          # (30, 32, 32, 1), float64
x = tf.constant(images)
print("shape", images.shape, f"| min {images.min():.2f} max {images.max():.2f} "
      f"mean {images.mean():.2f} var {images.var():.2f}")

# %% [markdown]
# **Case 1, min-max scaling** per pixel over the 30 images,
# $x_{new} = (x - x_{min}) / (x_{max} - x_{min})$, and **case 2, standardization**,
# $x_{new} = (x - \mu)/\sigma$. In TensorFlow, `tf.reduce_min/max` and `tf.nn.moments`
# over axis 0 give one statistic per pixel. We compare with bnlib's NumPy versions.

# %%
lo, hi = tf.reduce_min(x, axis=0), tf.reduce_max(x, axis=0)
case1 = ((x - lo) / (hi - lo)).numpy()
mean, var = tf.nn.moments(x, axes=[0])          # biased variance, like np.var
case2 = ((x - mean) / tf.sqrt(var)).numpy()

print(f"case 1: min {case1.min():.3f}, max {case1.max():.3f}")
print(f"case 2: mean {abs(case2.mean()):.3f}, variance {case2.var():.3f}")
checks.assert_close("case 1, TF vs bnlib", case1,
                    normalize.min_max_scale(images, axis=0)[0], 1e-12)
diff = checks.assert_close("case 2, TF vs bnlib", case2,
                          normalize.standardize(images, axis=0)[0], 1e-12)

# %% [markdown]
# **Case 3a, batch norm by hand** on a mini-batch of the first 10 images: the four
# steps of lesson 03 (batch mean, biased batch variance, normalize with ε inside
# the square root, scale by γ = 1 and shift by β = 0). Statistics are per pixel,
# taken over the 10 images. The worksheet used a tiny ε = 1e-8.

# %%
batch = images[:10]
eps = 1e-8
mu_b = batch.sum(axis=0) / len(batch)
var_b = ((batch - mu_b) ** 2).sum(axis=0) / len(batch)
by_hand = (batch - mu_b) / np.sqrt(var_b + eps)     # gamma = 1, beta = 0
print(f"case 3a: shape {by_hand.shape}, mean {abs(by_hand.mean()):.3f}, "
      f"variance {by_hand.var():.3f}, range [{by_hand.min():.2f}, {by_hand.max():.2f}]")

# %% [markdown]
# **Case 3b, the same in TensorFlow**: `tf.nn.moments` computes the batch
# statistics, `tf.nn.batch_normalization` applies
# $\gamma\,(x-\mu)/\sqrt{\sigma^2+\varepsilon} + \beta$. It is the low-level
# function: it does not keep moving statistics or learn anything. (These are
# the worksheet's per-pixel statistics; lesson 09 shows the per-channel ones a
# convolutional layer uses.)

# %%
tb = tf.constant(batch)
mu_tf, var_tf = tf.nn.moments(tb, axes=[0])
case3b = tf.nn.batch_normalization(tb, mu_tf, var_tf, offset=0.0, scale=1.0,
                                   variance_epsilon=eps).numpy()
checks.assert_close("case 3b (TF) vs 3a (by hand)", case3b, by_hand, 1e-10)
ones, zeros = np.ones((32, 32, 1)), np.zeros((32, 32, 1))
bn_out, *_ = batchnorm.batchnorm_forward(batch, ones, zeros, zeros, ones, training=True,
                                         eps=eps, axis=(1, 2, 3))
diff = checks.assert_close("bnlib (axis=(1, 2, 3), per pixel) vs by hand", bn_out, by_hand, 1e-10)

# %% [markdown]
# What did per-pixel batch norm do to the images? Two of them, and the
# histogram of all 10 × 1,024 values:

# %%
fig = plots.images_and_histogram(case3b,
                                 title="case 3b: the first 10 images, batch-normalized per pixel")
per_image = case3b.reshape(10, -1)
centres, widths = per_image.mean(axis=1), per_image.std(axis=1)
print(f"whole batch: mean {abs(case3b.mean()):.3f}, std {case3b.std():.3f}")
print(f"each image's own mean: {np.sort(centres).round(2)}")
print(f"spread inside one image: {widths.min():.2f} to {widths.max():.2f}")
assert centres.std() > 0.9 and widths.max() < 0.2

# %% [markdown]
# The batch as a whole has mean 0 and variance 1, but the histogram is not one
# bell: it is a set of narrow bumps, one per image (some overlap). Each pixel
# is compared with the *same pixel in the other nine images*, and these images
# differ from each other mostly by their brightness (offsets from about 0 to 59,
# against spreads of 1 to 4 inside an image). So every image lands near its own
# brightness rank, a bright one around +1.2, a dark one around −1.5, with a
# small spread from its own pattern. Normalizing across the batch standardizes
# each *pixel position*, not each image. (The panels use each image's own gray
# scale, which hides its offset.)
#
# ## 2 · The Keras layer
#
# `keras.layers.BatchNormalization` is the layer you put in a model. Build one for
# 3 features and look inside.

# %%
layer = keras.layers.BatchNormalization()
layer.build((None, 3))
print(f"momentum {layer.momentum}, epsilon {layer.epsilon}, axis {layer.axis}")
for w in layer.weights:
    print(f"  {w.name:16s} shape {tuple(w.shape)}  trainable={w.trainable!s:5s}  "
          f"initial {w.numpy().tolist()}")
assert (layer.momentum, layer.epsilon, layer.axis) == (0.99, 1e-3, -1)
assert [w.trainable for w in layer.weights] == [True, True, False, False]

# %% [markdown]
# Four vectors, one entry per feature:
#
# - **γ (gamma)** and **β (beta)**, starting at 1 and 0: *trainable*, learned by
#   gradient descent like any weight;
# - **moving_mean** and **moving_variance**, starting at 0 and 1: *not trainable*;
#   no gradient touches them. Each training-mode call updates them by exponential
#   smoothing (lesson 02): `new = momentum·old + (1 − momentum)·batch statistic`.
#
# The **`training`** argument chooses the statistics. `training=True` normalizes
# with the batch's own mean and variance and updates the moving statistics;
# `training=False` normalizes with the moving statistics and changes nothing.
# `model.fit` calls layers with `training=True`; `predict` and `evaluate` with
# `training=False`. A fresh layer in inference mode therefore computes
# $x/\sqrt{1+\varepsilon}$, almost the identity: it has learned nothing yet.

# %%
xb = (5.0 + 2.0 * rng.standard_normal((64, 3))).astype(np.float32)
fresh = layer(xb, training=False).numpy()          # nothing learned yet
diff = checks.assert_close("fresh layer, training=False, vs x / sqrt(1 + eps)", fresh,
                           xb / np.sqrt(1 + 1e-3), 1e-5)
out_train = layer(xb, training=True).numpy()
print(f"training=True : mean {abs(out_train.mean()):.3f}, std {out_train.std():.3f}")
checks.assert_close("moving_mean after one step vs 0.01 * batch mean",
                    layer.moving_mean.numpy(), 0.01 * xb.mean(axis=0), 1e-6)
biased = 0.99 + 0.01 * xb.var(axis=0)
checks.assert_close("moving_variance vs the biased (÷N) update",
                    layer.moving_variance.numpy(), biased, 1e-6)
unbiased_gap = np.abs(0.99 + 0.01 * xb.var(axis=0, ddof=1) - layer.moving_variance.numpy()).max()
print(f"distance from the unbiased (÷(N−1)) update: {unbiased_gap:.4f}")
assert unbiased_gap > 1e-4

# %% [markdown]
# After one step the moving mean has moved only 1% of the way towards the batch
# mean (momentum 0.99), and the moving variance was updated with the **biased**
# batch variance (divide by N), not the unbiased one. So, one step in, inference
# mode is still close to the fresh layer's near-identity:

# %%
out_infer = layer(xb, training=False).numpy()
print(f"training=False: mean {out_infer.mean():.3f}, std {out_infer.std():.3f} "
      f"(the input had mean {xb.mean():.3f}, std {xb.std():.3f})")
assert abs(out_infer.mean() - xb.mean()) < 0.2 and abs(out_infer.mean()) > 4

# %% [markdown]
# ### The Keras layer on images: one statistic per channel
#
# Cases 3a and 3b kept one mean and one variance **per pixel**, as the worksheet did.
# The Keras layer does not: `axis=-1` (the default) is the *kept* axis, so on images of
# shape (N, H, W, C) it keeps one statistic per **channel** and averages over the
# batch *and* over every pixel position. Our images have one channel, so the layer
# keeps a single mean and a single variance for the whole batch of 10 images:

# %%
image_bn = keras.layers.BatchNormalization()
keras_images = image_bn(batch.astype(np.float32), training=True).numpy()
print("moving_mean shape", tuple(image_bn.moving_mean.shape),
      "| gamma shape", tuple(image_bn.gamma.shape))
assert image_bn.moving_mean.shape == image_bn.gamma.shape == (1,)
whole = (batch - batch.mean()) / np.sqrt(batch.var() + image_bn.epsilon)
_ = checks.assert_close("Keras vs standardizing the whole batch (one mean, one variance)",
                        keras_images, whole, 5e-6)
gap = checks.max_abs_diff(keras_images, case3b)
checks.assert_true("and it is not case 3b (per pixel)", gap > 0.1, f"max |difference| {gap:.2f}")
try:
    keras.layers.BatchNormalization(axis=[1, 2, 3])
    rejected = "nothing: accepted"
except TypeError as error:
    rejected = type(error).__name__
print("BatchNormalization(axis=[1, 2, 3]) raises", rejected)
assert rejected == "TypeError"

# %% [markdown]
# Standardizing the whole batch with one mean and one variance keeps each image's
# brightness: the bright images stay bright and the dark ones dark, unlike case 3b,
# whose outputs differ from the layer's by up to about a third of a standard deviation.
# And the per-pixel statistics of case 3b cannot be asked of the Keras layer: `axis` is
# a single integer in Keras 3, and a list is refused. (To get them, flatten the
# images to (N, H·W·C) first, as `bnlib.tf_compare` does.) Per-channel statistics are
# what a convolutional network needs; lesson 09 explains why and builds them from
# scratch.

# %% [markdown]
# ## 3 · bnlib and Keras side by side
#
# Now the real test: the same 200 batches (32 examples, 5 features, float32)
# through a Keras layer and a `bnlib.batchnorm.BatchNorm` layer, with the same γ
# and β. We compare the training-mode output of the last batch, the moving
# statistics after 200 steps, the inference-mode output, and the gradients that
# `tf.GradientTape` finds against the ones bnlib's backward pass computes. Each
# difference is divided by the size of the values, so the tolerance is float32
# round-off (about 1e-7 per operation, a few 1e-6 after a few hundred steps).

# %%
batches = explore.random_batches(n_steps=200)       # (200, 32, 5)
gamma = rng.uniform(0.5, 2.0, 5).astype(np.float32)
beta = rng.normal(size=5).astype(np.float32)
dout = rng.normal(size=(32, 5)).astype(np.float32)
pairs = explore.side_by_side(batches, gamma, beta, dout)
for name, (k_value, b_value) in pairs.items():
    scale = max(1.0, float(np.abs(k_value).max()))
    relative = checks.max_abs_diff(k_value, b_value) / scale
    checks.assert_below(f"{name:16s} relative diff", relative, 1e-5)

# %% [markdown]
# Every quantity agrees to float32 round-off: the Keras layer *is* the four steps,
# the exponential smoothing and the backward pass of lessons 02 to 04.
#
# ## 4 · Conventions: the same idea, four spellings
#
# Frameworks agree on the normalization (always the biased batch variance) but
# not on how they name and store the running statistics.
#
# | | running update | default | running variance | default ε |
# |---|---|---|---|---|
# | Keras / TensorFlow | `m·old + (1−m)·batch` | m = 0.99 | biased (÷N) | 1e-3 |
# | PyTorch `BatchNorm1d/2d` | `(1−m)·old + m·batch` | m = 0.1 | unbiased (÷(N−1)) | 1e-5 |
# | CS231n assignment | `m·old + (1−m)·batch` | m = 0.9 | biased | 1e-5 |
# | Ioffe & Szegedy (2015) | moving averages while training, to track the model's accuracy (§3.1); for the final inference network, population statistics averaged over many training batches (Algorithm 2) | not given | unbiased, $\frac{N}{N-1}\,\mathrm{E}[\sigma_B^2]$ (N = batch size; the paper writes m) | "a constant" |
#
# The paper's §3.1 also notes that with the statistics fixed at inference, the
# normalization is a linear transform of each activation, and γ and β compose with it
# into a single linear transform: that is **folding**, section 7 of this lesson.
#
# So "momentum 0.1" in PyTorch is the same smoother as "momentum 0.9" in Keras,
# and PyTorch's default (0.1) forgets ten times faster than Keras's (0.99).
# `bnlib.ema.convert_momentum` translates; bnlib's layer takes the Keras meaning and
# can mimic PyTorch's unbiased running variance with `unbiased_moving_variance=True`.

# %%
to_torch = convert_momentum(0.99, source="keras", target="pytorch")
to_keras = convert_momentum(0.1, source="pytorch", target="keras")
print(f"Keras 0.99 -> PyTorch {to_torch:.2f};  PyTorch 0.1 -> Keras {to_keras:.2f}")
assert np.isclose(to_torch, 0.01) and np.isclose(to_keras, 0.9)
torch_like = batchnorm.BatchNorm(3, momentum=to_keras, eps=1e-5, unbiased_moving_variance=True)
torch_like(xb.astype(np.float64), training=True)
expected = (1 - 0.1) * 1.0 + 0.1 * xb.astype(np.float64).var(axis=0, ddof=1)  # PyTorch's rule
diff = checks.assert_close("PyTorch-style running variance", torch_like.moving_variance,
                          expected, 1e-12)

# %% [markdown]
# ### Explorer: how fast do the moving statistics settle?
#
# A large momentum averages over a long window, about $1/(1-m)$ steps, so the
# moving statistics are smooth but slow to leave their starting values (0 and 1).
# A small momentum settles fast but jitters with every batch. Drag the slider:
# the readout gives the PyTorch spelling of your setting, the warm-up length
# $\lceil\ln 0.05/\ln m\rceil$ and the jitter of the moving mean after warm-up,
# measured and predicted ($\frac{\sigma}{\sqrt{N}}\sqrt{\frac{1-m}{1+m}}$). The plot
# shows one run, for 700 steps (past the warm-up of every setting); the jitter is
# measured over 200 independent runs at step 700, because
# the steps of one run are correlated over about $1/(1-m)$ steps and would understate it.

# %% tags=["nbval-ignore-output"]
explore.momentum_explorer()

# %% [markdown]
# At Keras's default 0.99 (batches of 32 from a distribution with mean 3 and
# variance 4), checked:

# %%
print(widgets.readout(explore.MomentumScene, momentum=0.99))
jitter, predicted = explore.moving_mean_spread(0.99)
assert explore.warmup_steps(0.99) == 299
checks.assert_true("measured jitter within 30% of the prediction", 0.7 < jitter / predicted < 1.3,
                   f"ratio {jitter / predicted:.1f}")

# %% [markdown]
# The explorer's moving variance settles *below* the true variance 4. Its simulation
# applies Keras's rule, which averages the **biased** batch variance, whose
# expectation is $\frac{N-1}{N}\sigma^2$ for batches of N: here 31/32 of the truth. That
# is why the paper (and PyTorch) use the unbiased $\frac{N}{N-1}$ version for inference;
# with batches of 32 the difference is 3%, with batches of 4 it would be 25%.
#
# Does the Keras layer itself do this? Section 2 checked one update exactly. Over
# many steps the two conventions predict different settled values, 3.856 (biased) and
# 3.980 (unbiased, both including the 0.7% of the start value 1 that 500 steps at 0.99
# leave). One run jitters by about 0.07 around its value, too much to tell them
# apart; a Keras layer with 200 features is 200 independent runs, and their average
# is precise to about 0.005:

# %%
settled = explore.keras_settled_variance(momentum=0.99, steps=500, runs=200)
print(f"predicted after 500 steps: biased {settled['biased']:.3f}, "
      f"unbiased {settled['unbiased']:.3f}")
_ = checks.assert_below("Keras's moving variance (mean of 200 runs) minus the biased prediction",
                        abs(settled["keras"] - settled["biased"]), 0.03)
checks.assert_true("and it is far from the unbiased prediction",
                   abs(settled["keras"] - settled["unbiased"]) > 0.09,
                   f"gap between the predictions {settled['unbiased'] - settled['biased']:.3f}")

# %% [markdown]
# About 300 steps before the moving mean forgets its zero start: a model trained
# for only a few hundred steps with momentum 0.99 evaluates with statistics that
# are still biased towards 0 and 1. That is a classic "my model is great in
# training and poor in evaluation" bug; lesson 08 shows the repair, and section 6
# avoids it by choosing the momentum.
#
# ## 5 · Freezing batch norm when fine-tuning
#
# When you fine-tune a pretrained model on a small new dataset, you usually want
# its batch-norm layers frozen: both the learned γ, β *and* the moving statistics.
# Keras has two switches that sound alike:
#
# - **`layer.trainable = False`** removes γ and β from the trained weights. For
#   `BatchNormalization` specifically, Keras (since TF 2) *also* runs the layer in
#   inference mode, so the moving statistics stop updating too.
# - **`training=False`** at call time only selects inference mode (moving
#   statistics used and not updated); γ and β still receive gradients.
#
# We train a small Dense → BN → ReLU → Dense network for 10 SGD steps on the digits
# five ways and measure which of the four vectors moved: as is; with
# `bn.trainable = False`; in a custom loop that calls `bn(h, training=False)`; in a
# functional model built with `bn(h, training=False)`; and with Dense and BN wrapped
# in a `base` model called as `base(inputs, training=False)`, the pattern of the
# Keras fine-tuning guide. The last two are then trained with `fit`.

# %%
modes = ("default", "trainable_false", "call_training_false", "graph_training_false",
         "base_training_false")
moved = {mode: explore.fine_tune_changes(mode) for mode in modes}
for mode, change in moved.items():
    states = [f"{k}: {'moved' if v > 0 else 'frozen'}" for k, v in change.items()]
    print(f"{mode:22s}", "  ".join(states))

# %%
pattern = {mode: tuple(v > 0 for v in change.values()) for mode, change in moved.items()}
assert pattern["default"] == (True, True, True, True)
assert pattern["trainable_false"] == (False, False, False, False)
assert pattern["call_training_false"] == (True, True, False, False)
assert pattern["graph_training_false"] == pattern["base_training_false"] == (True, True, True, True)
print("checked: only trainable=False freezes all four vectors")

# %% [markdown]
# The last two lines are the surprise. In a custom `GradientTape` loop, calling
# `bn(h, training=False)` does freeze the moving statistics. But writing
# `training=False` *while building* a functional model, on the layer or on a
# wrapped base model, then calling `fit`, did **not** freeze anything in the Keras
# version pinned here (3.15): `fit` passes `training=True` down through the model,
# and it overrides the value stored in the graph (reported as keras-team/keras
# issue #20285 against the fine-tuning guide). Tutorials, including the Keras
# guide, recommend that pattern, so check, as we just did, which weights really
# change when you upgrade. For fine-tuning, `trainable = False` on the
# batch-norm layers (or on the whole pretrained base) is the switch that does
# what you mean. Two more traps wait in the full recipe, below.
#
# ### The full fine-tuning recipe, step by step
#
# The test above set `trainable` *before* compiling. A real fine-tuning changes it
# between trainings. Here a `base` (Dense → BN, called as `base(inputs, training=False)`)
# is first trained with everything on (standing in for pretraining); then
#
# 1. **freeze** the base (`base.trainable = False`), compile, train the new head;
# 2. **unfreeze** it (`base.trainable = True`), recompile, fine-tune;
# 3. set the batch-norm layer's `trainable = False` again, but *without* recompiling;
# 4. the same, recompiled.
#
# After each step's training (10 SGD steps) we record which weights moved:

# %%
recipe = explore.fine_tune_recipe()
columns = explore.BN_VECTORS + ("base Dense",)
headers = ("gamma", "beta", "moving mean", "moving var.", "base Dense")
print(f"{'':58s}", *(f"{name:11s}" for name in headers), "bn.trainable")
for step, moved_now in recipe:
    print(f"{step:58s}", *(f"{'moved' if moved_now[k] else 'frozen':11s}" for k in columns),
          moved_now["bn.trainable"])

# %%
pattern = [tuple(moved_now[k] for k in explore.BN_VECTORS) for _, moved_now in recipe]
assert pattern == [(True,) * 4, (False,) * 4, (True,) * 4, (True,) * 4, (False,) * 4]
assert [moved_now["base Dense"] for _, moved_now in recipe] == [True, False, True, True, True]
assert all(moved_now["head"] for _, moved_now in recipe)
assert [moved_now["bn.trainable"] for _, moved_now in recipe] == [True, False, True, False, False]
print("checked: step 2 unfreezes BN too; step 3 changes nothing until the recompile of step 4")

# %% [markdown]
# Read the table row by row:
#
# - **Step 1** works: the frozen base, batch norm included, does not move; only the head learns.
# - **Step 2** is the first trap: `base.trainable = True` sets `trainable` back to True on
#   *every* layer inside the base, recursively, batch norm included, and `fit` then
#   trains it in training mode (the `training=False` in the graph does not stop it, as
#   above). All four vectors move: the moving statistics start drifting towards the
#   small new dataset's batches, and γ, β are trained on them.
# - **Step 3** is the second trap: `fit` builds its training step once after each
#   `compile` and keeps it, with the weights that were trainable then. Changing
#   `trainable` afterwards changes nothing: the flag says False, and all four vectors
#   still moved.
# - **Step 4**, after `compile`, is what was meant: batch norm frozen (inference mode,
#   γ and β fixed), the base's dense layer and the head fine-tuned.
#
# The recipe, then: freeze, compile, train the head; unfreeze the base, **set every
# batch-norm layer's `trainable = False` again, recompile**, fine-tune with a small
# learning rate.
#
# ## 6 · The two Keras models from the notes
#
# Two ways to place batch norm in a Keras MLP (both also normalize the input
# pixels with a first batch-norm layer):
#
# 1. **after each hidden layer**: `Dense(64, activation="elu")` → `BatchNormalization()`;
# 2. **before the activation**: `Dense(64, use_bias=False)` → `BatchNormalization()`
#    → `Activation("elu")`. The dense layer has no bias because batch norm subtracts
#    the mean right after it, which cancels any bias; β takes over its role
#    (lesson 03 showed the redundancy numerically).
#
# Both are trained for 6 epochs of SGD (learning rate 0.05, batches of 32) on the
# digits, with seeded, deterministic ops, and two settings the defaults would get wrong
# here:
#
# - **Full batches only.** 1,347 training digits make 42 batches of 32 and a last one
#   of 3. Batch statistics from 3 examples are mostly noise, and the moving statistics
#   would weigh them like any other batch, so each epoch drops that remainder
#   (`tf.data`'s `drop_remainder=True`): 252 steps in all.
# - **Momentum 0.9, not 0.99.** Section 4 measured a warm-up of 299 steps at 0.99: after
#   252 steps the moving statistics would still hold a good part of their start values
#   0 and 1. At 0.9 the window is about 10 steps and the warm-up 29.
#
# The momentum changes nothing in training (training mode normalizes with the batch's
# own statistics), only the statistics the trained model evaluates with. How far
# they are from the truth, first for the input layer, whose statistics do not depend
# on the weights (the moving mean summed over the 64 pixels, against the training
# set's pixel means summed):

# %%
share = {m: explore.input_moving_mean_share(m) for m in (0.99, explore.MOMENTUM)}
for m, value in share.items():
    print(f"momentum {m}: after 252 steps the input layer's moving mean is {value:.2f} "
          f"of the pixel means (start-up bias left: {m ** 252:.2f})")
assert abs(share[0.99] - (1 - 0.99 ** 252)) < 0.005 and abs(share[explore.MOMENTUM] - 1) < 0.02

# %% [markdown]
# In the hidden layers the statistics also change while the network learns, and a
# moving variance averages the batch variances of the network as it was over its
# window. We push the whole training set through each *trained* network and divide
# each hidden unit's moving variance by the variance the trained network actually
# produces there (one layout, three seeds, trained once at each momentum):

# %%
stored = explore.stored_statistics(seeds.LESSON_SEEDS)
for claim, (holds, detail) in explore.stored_verdicts(stored).items():
    checks.assert_true(claim, holds, detail)

# %% [markdown]
# At 0.99 the model would evaluate with variances too large by a factor of 1.1 at
# least (measured while writing the lesson: about 1.6 for the median unit, 2 or more
# for some): they still remember the first epochs, when the activations were larger,
# and the start value 1. At 0.9 they describe the trained network. (Lesson 08 shows the repair when a
# model has been trained anyway: recompute the statistics with the final weights.)
# A rule of thumb: choose the momentum so that the window $1/(1-m)$ is small against the
# number of training steps.
#
# First the models' sizes, which do not depend on training:

# %%
counts = {kind: explore.parameter_counts(explore.build_model(kind))
          for kind in explore.KINDS}
for kind, count in counts.items():
    print(f"{kind:22s} {count}")
a, b = counts["bn_after_activation"], counts["bn_before_activation"]
assert a["total"] - b["total"] == 64 + 32 and a["non_trainable"] == b["non_trainable"] == 320

# %% [markdown]
# The second model has exactly **96 fewer parameters**: the biases of the two
# hidden dense layers (64 + 32), which it dropped because β does their job. Both
# have 320 non-trainable parameters: a moving mean and a moving variance for each
# of the 64 input pixels, 64 hidden units and 32 hidden units, 2 × 160.
#
# How well they learn is an outcome of training, and one run is one draw: the
# seed sets the initial weights and the order of the batches. So each layout is
# trained on three seeds (six runs), and we look at the spread.

# %%
comparison = explore.compare_layouts(seeds.LESSON_SEEDS)
fig = explore.layouts_figure(comparison)
for kind in explore.KINDS:
    print(f"{kind:22s} test accuracy (%): "
          f"{seeds.spread(100 * comparison.test_accuracy[kind], '.1f')}")
for claim, (holds, detail) in explore.layout_verdicts(comparison).items():
    checks.assert_true(claim, holds, detail)

# %% [markdown]
# Both layouts learn the digits well in a few seconds, on every seed, and they
# end close together in test accuracy: the medians are less than two points apart,
# a handful of the 450 test digits, too few to rank the layouts. The notes' rule of
# thumb that "before the activation" tends to work better does not show here, and
# its training loss stays higher on every seed. (Over 16 seeds, measured while writing
# the lesson, each layout came out ahead in test accuracy on some of them.) The two
# models differ in more than the order of two layers, though: in the first, the output layer also receives batch-normalized
# inputs. One small network on one small data set settles no general question; it
# shows why such advice is worth measuring on your own problem, over several seeds.
# (Lesson 05 compares the two placements in the from-scratch network.)
#
# ## 7 · Folding batch norm into the dense layer
#
# At inference, batch norm is a fixed affine map per feature,
# $y = \gamma\,(z - \mu)/\sigma + \beta$ with $\sigma = \sqrt{\text{moving variance} + \varepsilon}$.
# If $z = xW + b$ comes from a dense layer, the two collapse into one dense layer:
#
# $$W' = W \cdot \frac{\gamma}{\sigma} \ \text{(column by column)}, \qquad b' = \frac{\gamma\,(b - \mu)}{\sigma} + \beta .$$
#
# `bnlib.batchnorm.fold_into_dense` computes this (b = 0 for `use_bias=False`). A
# batch norm *before* a dense layer (the input layer, or model 1 where BN follows
# the activation) folds into the **next** dense layer instead, scaling its rows:
# $W'' = \mathrm{diag}(\gamma/\sigma)\,W$, $b'' = (\beta - \gamma\mu/\sigma)\,W + b$.
# `explore.fold_model` walks the Keras model and applies whichever fits.

# %%
split = data.digits(dtype=np.float32)
for kind in explore.KINDS:
    model = explore.train_model(kind).model
    folded = explore.fold_model(model)
    p_keras = model.predict(split.x_test, verbose=0)
    p_folded = explore.dense_stack_forward(folded, split.x_test)
    print(f"{kind}: {len(model.layers)} Keras layers -> {len(folded)} dense layers")
    checks.assert_close("  probabilities, folded vs Keras", p_folded, p_keras, 1e-5)
    same = np.mean(p_folded.argmax(axis=1) == p_keras.argmax(axis=1))
    checks.assert_true(f"  same predicted class on all {len(p_keras)} test digits", same == 1.0)

# %% [markdown]
# The folded network is a plain stack of three dense layers and computes the same
# function. What does it save? Two different things could: the batch-norm layers'
# own passes over memory (each reads and writes every activation once more), and a
# fixed cost *per layer and per call* (in eager Keras, Python runs each layer's
# `call` every time). The folded model has 3 layers instead of 8. To tell the two
# apart, we time the model with batch norm and its folded copy on 32 rows (almost no
# arithmetic: what is left is per-layer cost) and on 22,500 rows, each called eagerly
# and through `tf.function` (one compiled graph, little per-layer cost), and once more
# with hidden layers of 1,024 units, where the matrix products dominate. Timings vary
# from run to run, so only verdicts with wide margins are printed:

# %% tags=["nbval-ignore-output"]
big = np.tile(split.x_test, (50, 1))                       # 22,500 rows
model = explore.train_model("bn_before_activation").model
wide = explore.build_model("bn_before_activation", hidden=(1024, 1024))
speedups = {}
for label, net, x_in in (("64-32, 32 rows", model, big[:32]),
                         ("64-32, 22,500 rows", model, big),
                         ("1024-1024, 2,250 rows", wide, big[:2250])):
    for compiled in (False, True):
        t_bn, t_folded = explore.folding_times(net, x_in, compiled)
        speedups[label, compiled] = t_bn / t_folded
        print(f"{label:22s} {'tf.function' if compiled else 'eager':11s} "
              f"with BN {1e3 * t_bn:7.1f} ms, folded {1e3 * t_folded:7.1f} ms, "
              f"speed-up x{t_bn / t_folded:.1f}")
print("eager, 32 rows: folding saves a per-layer cost (speed-up above x2):",
      speedups["64-32, 32 rows", False] > 2)
print("tf.function, 32 rows: that cost is gone (speed-up below x1.5):",
      speedups["64-32, 32 rows", True] < 1.5)
print("tf.function, 1024-wide layers: the matrix products dominate (below x1.5):",
      speedups["1024-1024, 2,250 rows", True] < 1.5)

# %% [markdown]
# The large eager speed-up is the cost of executing layers one by one: it is there on
# 32 rows, where there is nothing to compute, and it disappears under `tf.function`.
# Compiled, folding saves only the batch-norm layers' own work and passes over memory,
# and on these layers that gain is within the noise of the timings (measured while
# writing the lesson, on a shared 2-core machine: x0.8 to x1.3), small next to the
# matrix products, and smaller still with wide layers. Deployed models run compiled, so
# on a CPU the saving to expect for a small dense network is small. Folding pays more
# on convolutional networks and on accelerators, where one pass over memory can cost
# more than the arithmetic (lesson 09 folds batch norm into a convolution's kernel).

# %% [markdown]
# ## What the source notes get wrong
#
# The notes this course grew from say a few things about the Keras layer that the
# measurements above contradict:
#
# - *Claim:* at test time the network uses the mean and standard deviation of the whole
#   training set (one note even writes them as the mean and variance of the training
#   inputs). *True:* Keras stores **moving averages** of the batch statistics of each
#   layer's own input, updated during training; for a hidden layer those are statistics
#   of activations, of the network as it was over the last ~1/(1 − m) steps. They can
#   be far from the whole training set's: section 6 measured an input moving mean at
#   0.92 of the pixel means after 252 steps at momentum 0.99, and hidden moving
#   variances more than 1.1 times (median unit about 1.6 times) those of the trained
#   network. The paper's own inference recipe recomputes population statistics after
#   training (Algorithm 2); lesson 08 does it.
# - *Claim:* batch norm "learns" four vectors, γ, β, a mean and a standard deviation.
#   *True:* only γ and β are learned by gradient descent; Keras stores a moving mean and
#   a moving **variance** (not a standard deviation), marked non-trainable and updated
#   by smoothing (section 2, checked again below).
# - *Claim:* `use_bias=False` lets the dense layer do without an activation function.
#   *True:* it removes the **bias**, which the following batch norm would cancel (β takes
#   its role: 96 parameters fewer, section 6); the activation comes from the separate
#   `Activation("elu")` layer after batch norm, and the dense layer itself is linear.
# - *Claim:* one standard deviation, pooled over every hidden unit of the mini-batch,
#   divides them all. *True:* one statistic **per unit** (per channel on
#   images), taken over the batch: below, three features of scales 1, 10 and 100 come
#   out with standard deviation 1 each, where one standard deviation for all of them
#   would leave them 1 : 10 : 100. (Lesson 08 treats the noise this brings.)
# - *Claim:* placing batch norm before the activation works better. *Measured here:*
#   not on this problem: over three seeds the two layouts' median test accuracies are
#   within 2 points, and batch norm *after* the activation reaches the lower training
#   loss on every seed (section 6).
# - *Claim:* batch norm is an expensive computation that slows the network down, which
#   folding repairs. *Measured here:* the large saving appears only for eager calls and
#   is per-layer overhead; compiled with `tf.function`, the batch-norm layers' inference
#   cost was within the timing noise (section 7).
# - *Claim* (a comment in the CS231n assignment): the paper uses population statistics
#   *instead of* running averages. *True:* it uses both: moving averages to track the
#   model during training (§3.1) and population statistics for the final inference
#   network (Algorithm 2); see the table in section 4.

# %%
dense_no_bias = explore.build_model("bn_before_activation").layers[1]   # the first Dense
print(f"Dense(use_bias=False): bias {dense_no_bias.use_bias}, "
      f"activation {dense_no_bias.activation.__name__!r}")
assert not dense_no_bias.use_bias and dense_no_bias.activation.__name__ == "linear"
print("trainable:", {w.name: w.trainable for w in layer.weights})
assert [w.trainable for w in layer.weights] == [True, True, False, False]
scaled = (rng.standard_normal((64, 3)) * [1.0, 10.0, 100.0]).astype(np.float32)
per_unit = keras.layers.BatchNormalization()(scaled, training=True).numpy().std(axis=0)
one_std = ((scaled - scaled.mean(axis=0)) / scaled.std()).std(axis=0)
print(f"std per feature, per-unit statistics (Keras): {per_unit.round(2)}; "
      f"one std for all units: {one_std.round(2)}")
assert np.all(np.abs(per_unit - 1) < 0.01) and one_std[2] / one_std[0] > 50

# %% [markdown]
# ## Key takeaways
#
# - TensorFlow 2 is eager: the TF1 worksheet becomes plain calls;
#   `tf.nn.moments` + `tf.nn.batch_normalization` reproduce batch norm by hand exactly.
# - A Keras `BatchNormalization` layer holds four vectors: γ and β (trainable,
#   gradient descent) and the moving mean and variance (not trainable, exponential
#   smoothing with momentum 0.99, starting at 0 and 1, biased variance). ε = 1e-3.
# - `axis` is the one kept axis: on images (N, H, W, C) the layer keeps one statistic
#   per channel, over the batch and all pixel positions, not the worksheet's per-pixel ones.
# - `training=True` uses batch statistics and updates the moving ones;
#   `training=False` uses the moving ones. bnlib and Keras agree to float32 round-off.
# - "momentum" means opposite things in Keras (weight on the old value, 0.99) and
#   PyTorch (weight on the new value, 0.1); PyTorch also stores an unbiased variance.
#   Choose it so that the window 1/(1 − m) is short against the number of training steps.
# - To freeze batch norm for fine-tuning in Keras 3, set `trainable = False` and
#   **recompile**; after `base.trainable = True`, set it to False again on the batch-norm
#   layers and recompile. Check which weights change rather than trusting a
#   `training=False` in the graph.
# - Before the activation, the preceding dense layer needs no bias. At inference,
#   fold batch norm into the neighbouring dense layer: same outputs, fewer layers; on a
#   CPU the big saving is per-layer overhead of eager calls, small once compiled.
#
# ## Exercises
#
# **1. Fold a batch norm into its dense layer.** Write
# `fold_bn(W, b, gamma, beta, moving_mean, moving_variance, eps)` returning
# `(W_folded, b_folded)` for dense (W of shape (D_in, D_out), b of shape (D_out,))
# followed by an inference-mode batch norm.

# %%
def fold_bn(W, b, gamma, beta, moving_mean, moving_variance, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_fold_bn(fold_bn)

# %% [markdown]
# **2. One Keras moving-statistics step.** Write
# `keras_moving_update(moving_mean, moving_variance, x, momentum)` returning the new
# `(moving_mean, moving_variance)` after one training step on the batch x of shape
# (N, D), with the Keras convention. It must work for any N ≥ 1 (Keras updates on a
# single example too), and for any momentum.

# %%
def keras_moving_update(moving_mean, moving_variance, x, momentum):
    raise NotImplementedError("replace with your code")


_ = exercises.check_keras_moving_update(keras_moving_update)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network Training
#   by Reducing Internal Covariate Shift*, ICML 2015 (§3.1: moving averages to track the
#   model during training, and normalization with γ, β as one linear transform at
#   inference; Algorithm 2: inference with population statistics and the unbiased variance).
# - Keras documentation, *BatchNormalization layer*,
#   https://keras.io/api/layers/normalization_layers/batch_normalization/
# - Keras documentation, *Transfer learning & fine-tuning* (BatchNormalization and
#   `trainable = False`), https://keras.io/guides/transfer_learning/
# - TensorFlow API, `tf.nn.batch_normalization` and `tf.nn.moments`,
#   https://www.tensorflow.org/api_docs/python/tf/nn/batch_normalization
# - keras-team/keras issue #20285, *Possible typo in the "Transfer learning &
#   fine-tuning" guide* (2024): `fit` calls the model with `training=True`, which
#   overrides a `training=False` stored in a functional model,
#   https://github.com/keras-team/keras/issues/20285
# - PyTorch documentation, `torch.nn.BatchNorm1d` (momentum and the unbiased running
#   variance), https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html
# - A. Géron, *Hands-On Machine Learning with Scikit-Learn, Keras and TensorFlow*,
#   2nd ed., O'Reilly 2019, chapter 11 (the two Keras layouts, folding).
# - B. Jacob et al., *Quantization and Training of Neural Networks for Efficient
#   Integer-Arithmetic-Only Inference*, CVPR 2018 (folding batch norm for inference).
