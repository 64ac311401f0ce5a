# %% [markdown]
# # 08 · Noise, batch size and pitfalls
#
# Batch norm computes its statistics from the mini-batch. That one design choice
# explains both its side benefit (a little regularizing noise) and most of the
# ways it fails (tiny batches, batches that are not a fair sample, test data that
# differs from training data). This last lesson measures each of them, shows the
# repairs, and closes the course with a one-page summary.
#
# **After this lesson you will be able to**
# - quantify the noise that batch statistics inject, as a function of batch size,
#   and compare it with dropout's;
# - say why batch norm is mainly an optimization aid, and measure what its
#   regularizing noise is worth against a noise-free control;
# - explain what weight decay does to a layer before batch norm, and what dropout
#   before batch norm does to its statistics;
# - count what batch norm costs, per layer, and remove the cost at inference by folding;
# - recognize the train/inference mismatch caused by small, sorted or shifted
#   batches, and measure it;
# - repair it with precise or adapted statistics (and say when that works), or avoid
#   it with layer norm, group norm or batch renormalization.

# %%
import numpy as np

from bnlib import data, layernorm, nn
from bnlib.course import checks, plots, seeds, timing, widgets
from bnlib.lessons.lesson08 import exercises, explore

plots.use_course_style()
rng = np.random.default_rng(0)
split = data.digits()
print(f"digits: {len(split.x_train)} training and {len(split.x_test)} test images of 64 pixels")

# %% [markdown]
# ## 1 · Batch statistics are noisy
#
# In training, an example's normalized value $\hat x = (x-\mu_B)/\sigma_B$ depends
# on *which other examples* share its batch. Shuffle the batches and the same
# example gets a slightly different $\mu_B$ (an **additive** jitter) and a
# slightly different $\sigma_B$ (a **multiplicative** jitter) at every step. For N
# independent draws, the batch mean wanders around the population mean with a
# standard deviation of $\sigma/\sqrt{N}$; the batch standard deviation wanders by
# roughly $\sigma\sqrt{(\kappa-1)/(4m)}$, where $\kappa$ is the kurtosis (3 for a
# Gaussian), a large-N approximation. For the scale we print a *robust* spread, the
# interquartile range divided by 1.35 (which equals the standard deviation for a normal
# distribution): with N ≤ 3 examples a batch's standard deviation is now and then
# almost zero, so $\sigma/\sigma_B$ has infinite variance and its sample standard
# deviation is a meaningless, ever-growing number.
#
# We measure both on a real hidden unit, a random projection of the digit pixels,
# over 2,000 random batches per batch size. Dropout, for comparison, multiplies
# each unit by $\text{Bernoulli}(1-p)/(1-p)$: a factor with mean 1 and standard
# deviation $\sqrt{p/(1-p)}$, which is 1 at the common rate p = 0.5.

# %% tags=["nbval-ignore-output"]
explore.noise_explorer()

# %% [markdown]
# At the defaults (batch size 32, dropout rate 0.5), checked:

# %%
print(widgets.readout(explore.NoiseScene, batch_size=32, dropout_rate=0.5))
s32 = explore.noise_summary(32)
assert abs(s32["shift_std"] / s32["shift_law"] - 1) < 0.1
assert abs(s32["scale_spread"] / s32["scale_law"] - 1) < 0.25
assert 0.10 < s32["scale_spread"] < 0.14
assert explore.dropout_noise_std(0.5) > 5 * s32["scale_spread"]
s2 = explore.batch_noise(2)["scale"]
print(f"N = 2: the sample std of sigma / batch std is {s2.std():.0f}, its robust spread "
      f"{explore.robust_spread(s2):.1f}: the std is dominated by a few near-equal pairs")
assert s2.std() > 10 * explore.robust_spread(s2)

# %% [markdown]
# The $1/\sqrt{N}$ law holds at every batch size: the measured spread of the batch
# mean times $\sqrt{N}$ stays at 1.

# %%
for n in explore.BATCH_GRID:
    s = explore.noise_summary(n)
    print(f"N = {n:3d}: spread of batch mean {s['shift_std']:.3f}, × sqrt(N) = "
          f"{s['shift_std'] * np.sqrt(n):.2f};  one example's output spread {s['output_std']:.3f}")
    assert abs(s["shift_std"] * np.sqrt(n) - 1) < 0.1
near_one = np.mean(np.abs(explore.batch_noise(2)["output"]) > 0.9)
print(f"batches of 2: {near_one:.1%} of the normalized values are within 0.1 of ±1")
assert near_one > 0.8

# %% [markdown]
# So batch norm does inject noise like dropout does, additive from $\mu_B$ and
# multiplicative from $\sigma_B$, and every layer must learn to tolerate it. But
# at usual batch sizes it is **small**: at N = 32 the scale factor jitters by
# about 11%, against 100% for dropout at rate 0.5. It grows as the batch shrinks,
# and at N = 2 it is no longer noise at all: with two values per batch, each
# normalized value is exactly ±1 (up to ε), whatever the input.
#
# ## 2 · A regularizer by accident, an optimizer by design
#
# Regularization fights overfitting, the gap between training and test
# accuracy. That gap shrinks as the training set grows, so regularizers matter
# most for small datasets. We train a 64-128-128-10 ReLU network (normalization after each
# activation) on only 150 digits and on all 1,347, with nothing, dropout (rate
# 0.3), batch norm, or both, and read the train and test accuracy.
#
# A single training run is an anecdote: another seed (another draw of the 150
# examples, the initial weights, the batch order and the dropout masks) moves these
# accuracies by a point or two, about as much as the effects we are looking for.
# So this and every later training experiment runs on several seeds: the tables
# print the median and the range, the figures draw every seed, and each claim is
# checked on every seed. Here five seeds, since each run takes a fraction of a second.
#
# To see how much of batch norm's effect is its *noise*, the table has a control:
# **batch norm with whole-set statistics**. Same network, same minibatches, same
# learning rate, but at every step all 150 training examples go through the network,
# so each layer normalizes with the mean and variance of the whole training set
# (differentiated through, as batch norm does), and only the minibatch's rows enter
# the loss. What an example's normalized value is no longer depends on which other
# examples share its batch: the normalization's noise is gone, SGD's own noise stays.
# (It costs a pass over the whole training set per step, so it runs on the 150
# examples only.)

# %%
reg = explore.regularization_table(explore.REG_SEEDS)
print("\n".join(explore.regularization_lines(reg)))
fig = explore.regularization_figure(reg)

# %%
for claim in explore.regularization_claims(reg) + explore.noise_control_claims(reg):
    checks.assert_true(*claim)

# %% [markdown]
# Read the table the way the notes suggest:
#
# - With all the data, batch norm's gain is an **optimization** gain: the network
#   reaches (nearly) 100% training accuracy in the same 600 steps where the plain
#   one stays near 97%, and the test accuracy follows, on every seed. Nothing was
#   "regularized".
# - With 150 examples, every variant fits the training set (almost) perfectly and
#   the gap is large, 6 to 12 points. None of the three closes even half of it, on
#   any seed, and what they do change is small and not even consistent in sign:
#   the last line of the table shows each variant's test accuracy minus the plain
#   net's, and batch norm's range, alone or with dropout, straddles zero. A single
#   seed could have "shown" batch norm with dropout winning by three points;
#   another seed shows it losing.
# - The noise-free control says how much of that small effect is the noise: taking it
#   away costs about a point of test accuracy on the median (from nothing to three
#   points over the five seeds), and the control, like batch norm, still fits the 150
#   examples perfectly with a gap of 8 to 13 points. The noise is a regularizer, a
#   weak one: it is worth about as much as the seed-to-seed spread.
# - Batch norm's noise is a side effect, and a weak regularizer: on a large
#   dataset you add batch norm for faster, more stable training, and reach for
#   dropout, weight decay or data augmentation when you need regularization. The
#   original paper's remark that batch norm can sometimes replace dropout fits the
#   rows with all the data: there, dropout on top of batch norm adds nothing.
# - You may read that batch norm "does not smooth the cost", so it is no real
#   regularizer. True in the sense that it adds no penalty to the loss, as weight
#   decay does. (Santurkar et al. 2018 did find a *smoother loss landscape*, but that
#   is a statement about how easy the loss is to descend: optimization again.)
#
# ### Dropout feeding a batch norm: a variance shift
#
# In the "batch+dropout" rows each layer is dense → ReLU → batch norm → dropout, so
# the next batch norm receives dropped-out values. In training, dropout keeps a unit
# with probability 1 − p and divides it by 1 − p: the mean is unchanged, but the
# variance grows. The next batch norm's moving variance is learned on those inputs;
# at inference dropout is off, the inputs are less spread, and the moving variance is
# too large for them. Li et al. (2019) named this the *variance shift* between
# training and inference. Measured on the five networks trained on all 1,347 digits
# above (rate 0.3):

# %%
shift_dropout = explore.dropout_variance_shift(explore.REG_SEEDS)
print("\n".join(explore.dropout_variance_lines(shift_dropout)))
for claim in explore.dropout_variance_claims(shift_dropout):
    checks.assert_true(*claim)

# %% [markdown]
# The shift is there (the inference-time variance is about 13% below what the layer
# divides by), but here it costs nothing measurable: recomputing the statistics with
# dropout switched off leaves the test accuracy within a point. It grows with the
# dropout rate and with the number of dropout layers feeding batch norms, which is
# why Li et al. recommend dropout only after the last batch-norm layer (or a
# variance-preserving dropout). So dropout and batch norm combine, but not for free:
# put dropout where no batch norm comes after it, or recompute the statistics with
# dropout off.
#
# ### Noise needs a known scale
#
# There is one more noise-related use. If you deliberately *add* noise to
# activations (Gaussian noise layers, some regularizers), its effect depends on
# the activations' scale: noise of standard deviation 0.1 is overwhelming on
# activations of size 0.01 and invisible on activations of size 100. Batch norm
# fixes the scale (to γ, here 1), so the same noise means the same thing in every
# layer and at every point of training.

# %%
raw, after_bn = explore.noise_to_signal(scales=(0.01, 1.0, 100.0), noise_std=0.1)
for scale, r, b in zip((0.01, 1.0, 100.0), raw, after_bn):
    print(f"activations of scale {scale:6g}: noise/signal {r:8.3f} raw, {b:.3f} after batch norm")
assert raw.max() / raw.min() > 1e3 and np.allclose(after_bn, 0.1, rtol=0.01)

# %% [markdown]
# ## 3 · What kind of optimization aid?
#
# The notes make two claims: batch norm keeps back-propagated gradients from
# getting too big or too small, and it is *related to second-order methods*,
# which model the curvature of the loss. The first we can measure directly: the
# gradient norm of each layer's weights in a 9-layer sigmoid network at
# initialization, for three initialization scales.

# %%
norms = {}
for scale in (0.5, 1.0, 3.0):
    plain = norms[f"plain, init {scale}"] = explore.gradient_norms("none", scale)
    with_bn = norms[f"batch norm, init {scale}"] = explore.gradient_norms("batch", scale)
    print(f"init scale {scale}: first/last layer gradient ratio  plain {plain[0] / plain[-1]:.1e}"
          f"   with batch norm {with_bn[0] / with_bn[-1]:.2f};  largest/smallest over the 9 "
          f"layers  plain {plain.max() / plain.min():.1e}   with batch norm "
          f"{with_bn.max() / with_bn.min():.1f}")
    assert plain[0] / plain[-1] < 0.02 and with_bn.max() / with_bn.min() < 4
fig = plots.curves(np.arange(1, 10), norms, xlabel="layer (1 = first)", ylabel="||dL/dW||",
                   title="Gradient size per layer, 9-layer sigmoid net", logy=True)
for i, line in enumerate(fig.axes[0].lines):   # one colour per init scale
    line.set(color=f"C{i // 2}", linestyle="--" if i % 2 else "-")
legend = fig.axes[0].legend(fontsize=8)

# %% [markdown]
# Without batch norm, the first layer's gradient is from about a hundred to over
# ten million times smaller than the last one's (the sigmoid's slope, at most 1/4,
# multiplies in at every layer); with batch norm all nine layers receive gradients of
# comparable size (the largest within a factor of 4 of the smallest, 3.3 at init
# scale 3), whatever the initialization. That claim holds.
#
# The second claim needs care. Batch norm computes no curvature. What it does is
# make a layer's output **invariant to the scale of its weights**: multiply W by
# 10 and the normalized output is unchanged, while the gradient with respect to W
# shrinks by 10. Large weights therefore take small steps and small weights large
# ones, an automatic, per-layer step-size adjustment that resembles what a
# preconditioner does. That is the kinship with second-order methods, and it is
# only a kinship: the smoother loss surface of lesson 06 (Santurkar et al. 2018)
# is a related, measured account.

# %%
logits_diff, ratio = explore.scale_invariance(factor=10.0)
checks.assert_below("max |logits change| after W1 *= 10", logits_diff, 1e-5)
checks.assert_true("every entry of dL/dW1 shrank by exactly 10x",
                   np.allclose(ratio, 0.1, rtol=1e-4),
                   f"ratios in [{ratio.min():.4f}, {ratio.max():.4f}]")

# %% [markdown]
# ### Weight decay on scale-invariant weights controls the learning rate
#
# Scale invariance has a second consequence (van Laarhoven 2017). Since the loss
# does not change when W grows along itself, its gradient has no component along W:
# each column of dL/dW1 is orthogonal to that column of W1 (checked below, with a
# tiny ε so that the invariance is exact). A gradient step therefore can only make
# ‖W‖ grow (by Pythagoras), and a growing ‖W‖ means smaller and smaller *relative*
# steps: the effective learning rate, about lr/‖W‖², decays by itself. Weight
# decay (W −= lr · λ W) does not regularize such a layer at all, since the function
# does not depend on ‖W‖; it only shrinks ‖W‖, and so it **raises the effective
# learning rate**. We train the 64-64-64-10 batch-norm net for 400 steps with weight
# decay λ on W1 and W2 only (the two layers before a batch norm), on three seeds:

# %%
_ = checks.assert_below("max over columns |cos(W1_j, dL/dW1_j)| (ε = 1e-9)",
                        explore.radial_gradient(eps=1e-9), 1e-7)
decay_runs = explore.weight_decay_table(seeds.LESSON_SEEDS)
print("\n".join(explore.weight_decay_lines(decay_runs)))
for claim in explore.weight_decay_claims(decay_runs):
    checks.assert_true(*claim)
fig = explore.weight_decay_figure(decay_runs)

# %% [markdown]
# Without decay, ‖W1‖ creeps up and the relative step falls as training goes on. A
# little decay keeps the relative step about twice as large; too much (λ = 0.05)
# makes it about fifteen times larger, and the test accuracy drops by several points: not
# because the weights were "regularized", but because the effective learning rate
# became too high. On layers followed by batch norm, tune weight decay together
# with the learning rate, as one knob.

# %% [markdown]
# ## 4 · The costs, and folding
#
# Each batch-norm layer of width D adds **four vectors**: γ and β (2D trained
# parameters) and the moving mean and variance (2D stored statistics), minus the D
# biases of the dense layer before it, which become redundant. It also costs
# compute and memory traffic in every forward and backward pass: computing the
# statistics, normalizing, and the extra backward terms. How much?

# %%
sizes = (64, 100, 100, 10)
plain_net = nn.MLP(sizes, activation="relu", seed=0)
bn_net = nn.MLP(sizes, activation="relu", norm="batch", seed=0)
stats = sum(n.moving_mean.size + n.moving_variance.size for n in bn_net.norms)
print(f"trainable parameters: plain {plain_net.n_params()}, with batch norm {bn_net.n_params()} "
      f"(+{bn_net.n_params() - plain_net.n_params()}), plus {stats} stored statistics")
assert bn_net.n_params() - plain_net.n_params() == 2 * 200 - 200 and stats == 400

# %% [markdown]
# Timing a whole small network does not answer that: on the digits' 64-100-100-10
# net the forward pass takes a few milliseconds with or without batch norm, and
# reruns on a shared machine moved the ratio between 0.85 and 1.16. Much of that time
# is per-call overhead, not arithmetic (and the batch-norm net also skips the hidden
# biases). So we time **one layer of each kind**, forward and backward, on 2,048
# rows: a dense layer (with its bias), a batch-norm layer, and a ReLU for scale,
# at a narrow and at a wide width. (Times vary from machine to machine and run to
# run; the verdicts compare the two widths, with wide margins.)

# %% tags=["nbval-ignore-output"]
costs = explore.layer_costs(widths=(64, 512))
for width, t in costs.items():
    print(f"width {width:3d}: dense {1e3 * t['dense']:6.2f} ms, batch norm "
          f"{1e3 * t['batch norm']:5.2f} ms, ReLU {1e3 * t['relu']:5.2f} ms;  batch norm / dense "
          f"{t['batch norm'] / t['dense']:.2f}")
share = {width: t["batch norm"] / t["dense"] for width, t in costs.items()}
# Verdicts that hold on any CPU, even a loaded one: the dense layer's matrix products grow
# like D², batch norm's passes like D, so its share falls from width 64 to 512 (three- to
# fivefold on an idle machine here, under twofold with another job on the cores), and
# at 512 it is well under half (the absolute shares depend on the machine's BLAS kernel).
measured = f"{share[64]:.2f} at 64, {share[512]:.2f} at 512"
checks.assert_true("batch norm's share of its dense layer's time falls from width 64 to 512",
                   share[512] < share[64], measured)
checks.assert_true("at width 512, under half", share[512] < 0.5, measured)

# %% [markdown]
# The cost is real and easy to predict: batch norm does a few passes over its
# N × D input (mean, variance, normalize, scale; more in the backward pass), so it
# costs a few times an elementwise activation, while the dense layer's matrix
# products grow like N × D². In narrow layers batch norm costs a large share of the
# layer it normalizes (around half on this machine; how much depends on the
# CPU's matrix kernels); in wide ones a small fraction. (On GPUs, where matrix
# products are very fast, memory passes like these are a larger share.)
#
# At inference the cost disappears: the layer is a fixed affine map and folds
# into the dense layer before it (lesson 07), or into a convolution's kernel
# (lesson 09). Fold a trained network and check it
# computes the same thing:

# %%
trained = explore.trained("batch")
folded = explore.fold_mlp(trained)
same = checks.assert_close("logits, folded vs batch-norm net (inference mode)",
                           folded.forward(split.x_test, training=False),
                           trained.forward(split.x_test, training=False), 1e-9)
assert all(n is None for n in folded.norms)
assert folded.n_params() == nn.MLP(trained.sizes).n_params()
print(f"the folded net has no normalization layers and {folded.n_params()} parameters, "
      "like a plain net")

# %% [markdown]
# ## 5 · When the batch does not represent the data
#
# Batch norm trains with the statistics of each batch and predicts with moving
# averages of them. Both are good estimates of the population statistics only if
# each batch is a fair, large enough sample. Three ways that fails.
#
# ### Very small batches
#
# We train the same network with batch sizes 32 down to 2 (three epochs each, so
# batch 2 takes sixteen times as many steps as batch 32; momentum 0.9 so that the
# moving statistics settle), with batch norm, with **layer norm**, which
# normalizes each example over its own features and ignores the batch, and with
# **group norm** (four groups of features per example; both come back in
# section 6). For batch norm we also measure the train/inference mismatch: the
# accuracy when test batches of the training size are normalized with their own
# statistics (as in training) against the inference-mode accuracy. Three seeds.

# %%
small = explore.small_batch_table(seeds.LESSON_SEEDS)   # cached: trains once
print("\n".join(explore.small_batch_lines(small)))
fig = explore.small_batch_figure(small)

# %%
for claim in explore.small_batch_claims(small):
    checks.assert_true(*claim)

# %% [markdown]
# Look at the top of the table first: at batch 8 and 16 batch norm *beats* batch 32.
# Is a small batch's noise good for it? Three epochs are 126 steps at batch 32 but
# 505 at batch 8: the smaller batch simply took four times as many steps. Batch size
# and step count are confounded. So we also train batch norm for the same 505 steps
# at every batch size (12 epochs at batch 32, 3 at batch 8):

# %%
print("\n".join(explore.equal_steps_lines(small)))
for claim in explore.equal_steps_claims(small):
    checks.assert_true(*claim)

# %% [markdown]
# At equal steps the advantage of the smaller batches disappears (the dashed line
# in the left panel): it was the extra steps, not the smaller batches. Which
# comparison is fair depends on the budget: per example seen (equal epochs, the
# same compute), small batches take more, noisier steps; per step (equal steps,
# the same number of updates), larger batches see more data. Say which one you
# compare. The collapse at batch 2 survives both: at equal epochs batch 2 even had
# sixteen times as many steps as batch 32.

# %% [markdown]
# With two examples per batch, each training-mode unit is ±1, so the network
# learns on a crude, noisy version of its inputs, and the moving statistics
# describe a different normalization from the one it trained with. Layer norm and
# group norm suffer far less (their median error stays near 5% at every batch
# size), while batch norm loses over 10 points of accuracy at batch 2 (on the
# median; at least 5 on every seed). The mismatch (right panel) is the
# tell-tale sign: at batch 32 the two ways of normalizing agree, at batch 2 they
# disagree wildly.
#
# Batch norm's runs on batches of 2 and 4 are also **chaotic**: change the initial
# weights by one part in $10^{15}$, about the round-off that differs between two
# CPUs, and the final accuracy moves by about a point at batch 4 and by several
# points, sometimes over ten, at batch 2. There each unit's output is close to
# the sign of the difference between two examples, a nearly discontinuous
# function, so tiny differences grow over the 2,000 steps. That is why the table
# prints no number for them: only the figure (each seed) and the checked
# verdicts, whose margins are wider than that chaos.
#
# ### Batches sorted by class
#
# Suppose the data arrives sorted, so every batch holds a single class (a
# non-i.i.d. stream: data read file by file, or one label per shard). Within such a
# batch the class's own average pattern *is* the batch mean, and batch norm
# subtracts it. We train for 400 steps of 32 on shuffled or on one-class batches,
# three seeds each.

# %%
sorted_runs = explore.sorted_batch_table(seeds.LESSON_SEEDS)
print("\n".join(explore.sorted_batch_lines(sorted_runs)))
for claim in explore.sorted_batch_claims(sorted_runs):
    checks.assert_true(*claim)
fig = explore.sorted_batch_figure(sorted_runs)

# %% [markdown]
# The mismatch, measured: how far a training batch's first-layer means sit from the
# moving means the network uses at inference (in moving-standard-deviation units),
# for 20 shuffled batches and 20 one-class batches, on each seed's sorted-trained
# network.

# %%
print("\n".join(explore.one_class_mismatch_lines(sorted_runs)))
for claim in explore.one_class_mismatch_claims(sorted_runs):
    checks.assert_true(*claim)

# %% [markdown]
# Batch norm collapses to near chance: inside a one-class batch, normalization
# erases exactly the information that tells the classes apart, so the network
# learns almost nothing it can use later. Layer norm and the plain network only
# suffer the milder harm of a badly ordered SGD stream (one to three points for
# layer norm, three to eight for the plain net here). The lesson: **shuffle**, and
# for data that cannot be shuffled (some sequence and federated settings) prefer a
# batch-independent normalization.
#
# ### A shifted test set
#
# Finally, train on clean digits and test on digits from "another camera"
# (contrast × 0.6, brightness + 0.3). The moving statistics describe the training
# inputs; we measure how far the first batch-norm layer's test-set means sit from
# them, in moving-standard-deviation units. The networks are the three seeds'
# batch-norm networks trained on shuffled batches above.

# %%
shift_runs = explore.shift_table(seeds.LESSON_SEEDS)
print("\n".join(explore.shift_lines(shift_runs)))
for claim in explore.shift_claims(shift_runs):
    checks.assert_true(*claim)

# %% [markdown]
# ## 6 · Repairs
#
# **Recompute the statistics (precise batch norm).** The moving averages are a
# cheap running estimate; after training you can replace them with the exact mean
# and variance of each layer's input over the whole training set, layer by layer,
# with the final weights. It costs one pass over the data. It helps most when the
# moving averages are stale, for instance after a short training run with momentum
# 0.99, whose warm-up (lesson 07) takes about 300 steps. We stop the same training
# after 30 to 400 steps and compare the two sets of statistics, on three seeds:

# %%
gain_runs = explore.precise_gain_table(seeds.LESSON_SEEDS)
print("\n".join(explore.precise_gain_lines(gain_runs)))
for claim in explore.precise_gain_claims(gain_runs):
    checks.assert_true(*claim)
fig = explore.precise_gain_figure(gain_runs)

# %% [markdown]
# After 30 steps the moving averages still carry much of their starting values
# (mean 0, variance 1): $0.99^{30} \approx 0.74$ of their weight. Precise
# statistics then add 17 to 28 points; by 400 steps, past the warm-up, both agree
# within a point.
#
# The same pass over *unlabelled target data* can repair the shifted test set: with
# statistics from the new camera's images, each layer sees standardized inputs
# again. (This is "adaptive batch norm", AdaBN.) But the camera of section 5 is a
# best case by construction: 0.6 x + 0.3 never leaves [0, 1], so it is exactly
# affine, every first-layer unit is shifted and scaled, and normalizing with the
# shifted images' own statistics undoes it exactly (up to ε). So we also try a
# camera that is not affine, x² plus noise (std 0.1, clipped to [0, 1]), and vary
# how many unlabelled shifted images the repair sees: 8, 32 or all 450.

# %%
print("\n".join(explore.adaptation_lines(shift_runs)))
for claim in explore.adaptation_claims(shift_runs):
    checks.assert_true(*claim)
_ = checks.assert_below("affine shift, adapted vs the clean images adapted to themselves: "
                        "max |logit difference| over 3 seeds (logits reach about 10)",
                        shift_runs.values["repair gap"].max(), 0.1, show=".2f")

# %% [markdown]
# So the repair works when the shift is one that per-unit means and variances can
# describe (an affine change of the inputs, such as contrast and brightness), and
# when it sees enough images: 32 repaired most of the affine shift, while 8 gave
# statistics so noisy that on the x² camera they made things worse than no repair
# at all (the small-batch problem again). A shift that changes the *shape* of the
# inputs' distribution, as x² + noise does, is only partly repaired: one to two
# points recovered of the two to three lost, because normalization only matches the
# first two moments of each unit.
#
# Precise statistics do **not** rescue the batch-2 network of section 5, though: its
# weights were learned under the crude ±1 normalization, and no choice of statistics
# undoes that. (Whether precise statistics gain or lose a few points there is as
# chaotic as the batch-2 run itself, so only the verdict is printed; the figure of
# section 5 draws it.)

# %%
for claim in explore.precise_rescue_claims(small):
    checks.assert_true(*claim)

# %% [markdown]
# **Normalize without the batch.** Layer norm (Ba et al. 2016) takes each
# example's mean and variance over its own features; group norm (Wu & He 2018)
# splits the channels into groups and normalizes each group of each example. Both
# have γ and β but no moving statistics, and compute the same thing in training
# and inference: `bnlib.layernorm` implements them (forward and backward,
# gradient-checked in the tests), with layer objects that plug into `nn.MLP`.

# %%
x_demo = rng.normal(5.0, 3.0, size=(4, 8))
ln_out, _ = layernorm.layer_norm_forward(x_demo, np.ones(8), np.zeros(8))
gn_out, _ = layernorm.group_norm_forward(x_demo, np.ones(8), np.zeros(8), groups=2)
alone, _ = layernorm.layer_norm_forward(x_demo[:1], np.ones(8), np.zeros(8))
print("layer norm, per-example means:", np.abs(ln_out.mean(axis=1)).round(3))
print("group norm, per-group means:  ",
      np.abs(gn_out.reshape(4, 2, 4).mean(axis=2)).round(3).ravel())
diff = checks.assert_close("example 0 normalized alone vs inside the batch",
                           alone[0], ln_out[0], 1e-12)

# %%
print("\n".join(explore.alternative_lines(small)))
for claim in explore.alternative_claims(small):
    checks.assert_true(*claim)

# %% [markdown]
# Both alternatives do far better than batch norm at batch size 2, on every seed
# (section 5's three seeds). Against their own batch-32 runs they neither clearly
# lose nor gain: from eight points worse (group norm, one seed) to three points
# better (with the same three epochs, batch 2 takes sixteen times as many, noisier
# steps). The
# price: a per-example normalization also removes per-example information (the
# overall brightness of an image, for layer norm), and on large-batch image
# classification batch norm usually still trains best.
#
# **Batch renormalization** (Ioffe 2017) is a third option that keeps batch norm.
# In training it normalizes with the batch, then corrects: x̂ · r + d, with
# r = σ_B/σ and d = (μ_B − μ)/σ, where μ and σ are moving averages and r, d are
# held constant in the backward pass. Unclipped, the correction turns the output
# into exactly (x − μ)/σ, the moving-statistics normalization that inference uses, so
# the two would agree, but training would then normalize with stale averages (at the
# start, not at all). So r and d are **clipped**: the paper ends with
# r ∈ [1/3, 3] and d ∈ [−5, 5], reached gradually from r = 1, d = 0 (plain batch
# norm). Keras has it as `BatchNormalization(renorm=True, renorm_clipping=...)`
# (no clipping unless you pass it). A fresh layer, whose averages are still
# μ = 0, σ = 1, on a batch of mean 10 and standard deviation 5:

# %%
keras = explore.keras()                     # imports TensorFlow (through bnlib.tf_compare)
x_far = np.random.default_rng(8).normal(10.0, 5.0, size=(32, 4)).astype("float32")
mu, sigma = np.zeros(4), np.ones(4)         # a fresh layer's renorm mean and std
for clipping in (None, {"rmin": 1 / 3, "rmax": 3.0, "dmax": 5.0}):
    layer = keras.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)
    out = layer(x_far, training=True).numpy()
    expected, r, d = explore.renorm_reference(x_far, mu, sigma, clipping)
    print(f"{'clipped' if clipping else 'unclipped'}: r = {r.round(2)}, d = {d.round(2)}")
    _ = checks.assert_close("  Keras vs x̂·r + d in NumPy", out, expected, 1e-5)
    gap = checks.max_abs_diff(out, (x_far - mu) / sigma)
    checks.assert_true("  the output is the moving-statistics normalization only if unclipped",
                       (gap < 1e-5) == (clipping is None),
                       "equal below 1e-05" if gap < 1e-5 else f"max |difference| {gap:.1f}")
print("the layer's vectors:", [w.name for w in layer.weights])

# %% [markdown]
# Unclipped, the fresh layer passes the batch through *un-normalized* (its output is
# (x − 0)/1, the inference formula with the still-initial averages), which is why
# the clip is needed; clipped, the output is x̂ · 3 + 5, far from what inference
# computes. Batch renormalization therefore *reduces* the train/inference mismatch
# for small or non-i.i.d. batches, as long as the clip does not bind; whenever a
# batch's statistics sit far from the moving ones, training and inference differ
# again. Keras keeps seven vectors for it: γ, β, the moving mean and variance used
# at inference (plus the moving standard deviation behind the variance), and the
# renorm mean and standard deviation used for r and d in training.
#
# ## 7 · The course on one page
#
# **What batch norm does.** For each feature (or channel), over the batch: subtract
# the batch mean, divide by $\sqrt{\text{batch variance} + \varepsilon}$, then scale
# by γ and shift by β, both learned. It keeps moving averages of the mean and
# variance (exponential smoothing, lesson 02) to use at inference, when there is no
# batch. Its backward pass is three terms (lesson 04).
#
# **Why it helps.** Each layer's inputs stay in a standard range wherever the
# earlier layers' weights go (lessons 01, 05, 06): the activations stay out of
# saturation, gradients stay the same size across layers, the loss surface is
# smoother, and the layer is insensitive to the scale of its weights. The practical
# result: higher learning rates, less fuss about initialization, faster training
# of deep networks. It also injects a little noise (this lesson), a weak regularizer.
#
# **When to use it.** Deep feed-forward and convolutional networks trained with
# reasonably large, shuffled batches (say 16 or more per device: lesson 10 measures why, since under data parallelism batch norm sees only each device's slice). Put it between
# the linear layer and the activation (drop that layer's bias) or after the
# activation; both work. Prefer layer norm or group norm for tiny batches,
# sequence models, and streams you cannot shuffle.
#
# **The settings that bite.**
#
# | Setting | What goes wrong | What to do |
# |---|---|---|
# | `training` mode | predicting in training mode (or a fresh layer in inference mode) | `fit` trains, `predict`/`evaluate` infer; in custom loops pass `training=` explicitly |
# | momentum | 0.99 needs ~300 steps to warm up; PyTorch's 0.1 means Keras's 0.9 | short runs: lower momentum or precise statistics; convert with `convert_momentum` |
# | ε | inside the square root; defaults differ (Keras 1e-3, PyTorch 1e-5) | match ε when porting weights between frameworks |
# | running variance | Keras stores the biased, PyTorch the unbiased one | matters for small batches and for porting |
# | batch size | small batches give noisy statistics and a train/inference mismatch | ≥ 16 per device (lesson 10), or layer/group norm, or batch renorm (within its clip) |
# | batch composition | sorted or one-class batches erase the signal | shuffle; otherwise a batch-independent norm |
# | data shift | moving statistics describe the old data | recompute statistics on the new data (AdaBN) |
# | fine-tuning | moving statistics drift on the small new dataset | Keras: `trainable = False` on the BN layers (checked in 07) |
# | bias before BN | wasted parameters | `use_bias=False` |
# | deployment | extra layers and memory passes | fold into the neighbouring dense/conv layer |
# | dropout before a BN | the next BN's moving variance is too large at inference | dropout after the last BN, or recompute the statistics with dropout off |
# | weight decay | on layers before BN it sets the effective learning rate, not the function | tune it together with the learning rate |

# %% [markdown]
# ## What the source notes get wrong
#
# - **"Dropout multiplies the network's weights by a vector of zeros and ones."**
#   Dropout multiplies *units* (activations), with a fresh mask for every example
#   and step; the weights are untouched. (Dropping weights is a different method,
#   DropConnect.) Below: the mask has the shape of the batch's activations, every
#   example of the batch gets its own, and the weights are unchanged after a
#   training pass.
# - **"Batch norm multiplies each unit by the standard deviation of all the hidden
#   units in the minibatch."** It divides each unit by *that unit's own* standard
#   deviation over the examples of the batch: one σ_B per unit, not one for the
#   layer. In a trained network those differ by a factor of about 3 across the first
#   layer's 64 units (below).
# - **The network is said to be "pretrained" for test time with statistics of the
#   entire training set.** Nothing is pretrained with them. Frameworks use the
#   moving averages accumulated during training (sections 5 and 6); the alternative is
#   to recompute each layer's statistics over the training set *after* training, with
#   the final weights, layer by layer (precise statistics, section 6). Statistics of
#   the training set taken before training would be wrong for every hidden layer,
#   whose inputs depend on the weights below it: below, for the second batch norm,
#   the moving means sit within 0.03 standard deviations of the exact ones, while
#   means computed with the initial weights sit several times further away.
# - **"Batch norm regularizes because the weights no longer need extreme values."**
#   A layer before batch norm is invariant to the scale of its weights (section 3:
#   W1 × 10 leaves the output unchanged), so how large its weights are neither matters
#   to the function nor is held in check: without weight decay ‖W1‖ only grows
#   (section 3). The regularizing effect that exists is the batch noise, and it is
#   small: removing it cost about a point on 150 digits (section 2, the whole-set
#   control).

# %%
facts = explore.dropout_mask_facts()
print(f"dropout mask shape {facts['mask shape']}, activations {facts['activations shape']}; "
      f"{facts['distinct rows']} different masks in a batch of {facts['batch size']}; "
      f"weights unchanged: {facts['weights unchanged']}")
assert facts["mask shape"] == facts["activations shape"] and facts["weights unchanged"]
assert facts["distinct rows"] == facts["batch size"]
unit_std = explore.per_unit_batch_std()
checks.assert_true("one batch std per unit, and they differ by over 2x across units",
                   unit_std.shape == (64,) and unit_std.max() > 2 * unit_std.min(),
                   f"largest / smallest {unit_std.max() / unit_std.min():.1f}")
sources = [explore.statistics_sources(s) for s in seeds.LESSON_SEEDS]
moving = [x["moving vs precise"] for x in sources]
initial = [x["initial vs precise"] for x in sources]
checks.assert_true("moving means within 0.05 std of the exact ones; initial-weight means over "
                   "3x further", max(moving) < 0.05 and min(np.divide(initial, moving)) > 3,
                   f"moving {seeds.spread(moving, '.3f')}; initial {seeds.spread(initial, '.2f')}")
checks.assert_true("without weight decay ||W1|| ends above its start on every seed",
                   bool(np.all(decay_runs.values["norm"][:, 0, -1] > decay_runs.values["start"][:, 0])))

# %% [markdown]
# ## Key takeaways
#
# - Batch statistics jitter by about $1/\sqrt{N}$ of the population spread: an
#   additive and a multiplicative noise, like dropout's but far weaker at usual
#   batch sizes.
# - Batch norm is mainly an optimization aid: same-size gradients across layers,
#   scale-invariant weights, faster fitting. Its regularization is a weak side
#   effect: on 150 digits neither it nor dropout closes even half of the
#   train-test gap, batch norm's small effect changes sign from seed to seed, and
#   removing its noise (whole-set statistics) costs about a point on the median.
# - On layers before batch norm, weight decay does not regularize: it shrinks a
#   scale that does not matter and so sets the effective learning rate.
# - A training outcome from one seed is an anecdote, and some (batch norm on
#   batches of 2) are chaotic: compare medians and ranges over seeds, and trust
#   only differences wider than the spread.
# - It costs 2 trained and 2 stored vectors per layer plus compute (as much as a
#   narrow dense layer, a small fraction of a wide one); folding removes the cost at
#   inference.
# - Small, sorted or shifted batches break the assumption that batch statistics
#   represent the data; measure the mismatch between batch-mode and inference-mode
#   results to detect it. Compare batch sizes at equal steps *and* at equal epochs.
# - Repairs: shuffle, precise statistics after training, statistics from the target
#   data (enough images, and a shift that means and variances can describe), or
#   batch-independent layer norm and group norm; batch renorm narrows the mismatch
#   within its clip of r and d.
#
# ## Exercises
#
# **1. Layer norm.** Write `layer_norm_rows(x, gamma, beta, eps)` for x of shape
# (N, D): normalize each row over its D features, then scale and shift.

# %%
def layer_norm_rows(x, gamma, beta, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_layer_norm(layer_norm_rows)

# %% [markdown]
# **2. Group norm.** Write `group_norm_rows(x, gamma, beta, groups, eps)` for x of
# shape (N, C): split the C channels into `groups` blocks of consecutive channels
# and normalize each block of each example separately.

# %%
def group_norm_rows(x, gamma, beta, groups, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_group_norm(group_norm_rows)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network Training
#   by Reducing Internal Covariate Shift*, ICML 2015.
# - I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016,
#   section 8.7.1 (batch normalization as reparametrization; its noise).
# - N. Srivastava et al., *Dropout: A Simple Way to Prevent Neural Networks from
#   Overfitting*, JMLR 15, 2014.
# - S. Santurkar, D. Tsipras, A. Ilyas and A. Madry, *How Does Batch Normalization
#   Help Optimization?*, NeurIPS 2018.
# - J. L. Ba, J. R. Kiros and G. E. Hinton, *Layer Normalization*, arXiv:1607.06450, 2016.
# - Y. Wu and K. He, *Group Normalization*, ECCV 2018.
# - S. Ioffe, *Batch Renormalization: Towards Reducing Minibatch Dependence in
#   Batch-Normalized Models*, NeurIPS 2017.
# - X. Li, S. Chen, X. Hu and J. Yang, *Understanding the Disharmony between Dropout
#   and Batch Normalization by Variance Shift*, CVPR 2019.
# - T. van Laarhoven, *L2 Regularization versus Batch and Weight Normalization*,
#   arXiv:1706.05350, 2017.
# - L. Wan, M. Zeiler, S. Zhang, Y. LeCun and R. Fergus, *Regularization of Neural
#   Networks using DropConnect*, ICML 2013.
# - Keras, `BatchNormalization` (`renorm`, `renorm_clipping`),
#   https://keras.io/api/layers/normalization_layers/batch_normalization/
# - Y. Wu and J. Johnson, *Rethinking "Batch" in BatchNorm*, arXiv:2105.07576, 2021
#   (precise batch norm, train/inference inconsistency).
# - Y. Li, N. Wang, J. Shi, J. Liu and X. Hou, *Revisiting Batch Normalization for
#   Practical Domain Adaptation* (AdaBN), ICLR workshop 2017.
