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
# - freeze batch norm correctly when fine-tuning (`trainable=False` vs `training=False`);
# - build the two classic Keras layouts (batch norm after the activation, or before it
#   with `use_bias=False`) and fold batch norm into the dense layers for inference.

# %%
import numpy as np

from bnlib import batchnorm, data, normalize
from bnlib.course import checks, plots, seeds, timing
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
# | Ioffe & Szegedy (2015) | no moving average: population statistics over many training batches after training | – | unbiased, $\frac{N}{N-1}\,\mathrm{E}[\sigma_B^2]$ (N = batch size) | "a constant" |
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
# shows one run; the jitter is measured over 200 independent runs at step 500, because
# the steps of one run are correlated over about $1/(1-m)$ steps and would understate it.

# %% tags=["nbval-ignore-output"]
explore.momentum_explorer()

# %% [markdown]
# At Keras's default 0.99 (batches of 32 from a distribution with mean 3 and
# variance 4), checked:

# %%
fig, text = explore.momentum_view(momentum=0.99)
print(text)
jitter, predicted = explore.moving_mean_spread(0.99)
assert explore.warmup_steps(0.99) == 299
assert 0.7 < jitter / predicted < 1.3
settled = explore.moving_statistics_over_runs(0.99)[1].mean()
print(f"moving variance at step 500, averaged over 200 runs, {settled:.3f}: "
      "below the true 4, near (31/32)·4 = 3.875")
assert abs(settled / 3.875 - 1) < 0.03 and settled < 4

# %% [markdown]
# Notice the moving variance settling *below* the true variance 4. Keras averages
# the biased batch variance, whose expectation is $\frac{N-1}{N}\sigma^2$ for
# batches of N, here 31/32 of the truth. That is why the paper (and PyTorch) use the unbiased
# $\frac{N}{N-1}$ version for inference; with batches of 32 the difference is
# 3%, with batches of 4 it would be 25%.
#
# About 300 steps before the moving mean forgets its zero start: a model trained
# for only a few hundred steps with momentum 0.99 evaluates with statistics that
# are still biased towards 0 and 1. That is a classic "my model is great in
# training and poor in evaluation" bug; lesson 08 shows the repair.
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
# what you mean: keep it in inference mode when you later unfreeze the rest.
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
# digits, with seeded, deterministic ops. First their sizes, which do not depend on
# training:

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
# its training loss stays higher on every seed. The two models differ in more than the order of two
# layers, though: in the first, the output layer also receives batch-normalized
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
# function. What does it save? The batch-norm layers' per-feature work and, more
# importantly in real deployments, whole passes over memory. Timed on 22,500 rows,
# both models in Keras (timings vary from run to run, so they are not checked):

# %% tags=["nbval-ignore-output"]
big = np.tile(split.x_test, (50, 1))
model = explore.train_model("bn_before_activation").model
plain = explore.folded_keras_model(explore.fold_model(model))
t_bn = timing.best_time(lambda: model(big, training=False))
t_folded = timing.best_time(lambda: plain(big, training=False))
print(f"with batch norm {1e3 * t_bn:.1f} ms, folded {1e3 * t_folded:.1f} ms, "
      f"speed-up ×{t_bn / t_folded:.1f}")

# %% [markdown]
# ## Key takeaways
#
# - TensorFlow 2 is eager: the TF1 worksheet becomes plain calls;
#   `tf.nn.moments` + `tf.nn.batch_normalization` reproduce batch norm by hand exactly.
# - A Keras `BatchNormalization` layer holds four vectors: γ and β (trainable,
#   gradient descent) and the moving mean and variance (not trainable, exponential
#   smoothing with momentum 0.99, starting at 0 and 1, biased variance). ε = 1e-3.
# - `training=True` uses batch statistics and updates the moving ones;
#   `training=False` uses the moving ones. bnlib and Keras agree to float32 round-off.
# - "momentum" means opposite things in Keras (weight on the old value, 0.99) and
#   PyTorch (weight on the new value, 0.1); PyTorch also stores an unbiased variance.
# - To freeze batch norm for fine-tuning in Keras 3, set `trainable = False`; check
#   which weights change rather than trusting a `training=False` in the graph.
# - Before the activation, the preceding dense layer needs no bias. At inference,
#   fold batch norm into the neighbouring dense layer: same outputs, fewer layers.
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
# (N, D), with the Keras convention.

# %%
def keras_moving_update(moving_mean, moving_variance, x, momentum):
    raise NotImplementedError("replace with your code")


_ = exercises.check_keras_moving_update(keras_moving_update)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network Training
#   by Reducing Internal Covariate Shift*, ICML 2015 (Algorithm 2: inference with
#   population statistics and the unbiased variance).
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
