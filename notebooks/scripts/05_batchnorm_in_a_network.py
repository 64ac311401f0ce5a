# %% [markdown]
# # 05 · Batch norm inside a network
#
# So far batch norm has been a formula applied to one array. Here it goes where
# it belongs: between the layers of a network that learns. We train small
# networks written from scratch in NumPy on real handwritten digits, with and
# without batch norm, and measure what changes.
#
# **After this lesson you will be able to**
# - write out one training step of a network with a batch-norm layer (forward,
#   backward, update of W, γ and β) and check it against a reference;
# - explain why the dense layer before batch norm needs no bias;
# - measure what batch norm buys in training: faster progress, a wider range of
#   usable learning rates and initialization scales, and say why (scale
#   invariance, seen in each layer's update-to-weight ratio);
# - tell what batch norm does and does not do for depth, with and without
#   residual connections;
# - compare batch norm before and after the activation honestly, over several
#   seeds, and tell a reproducible training from a chaotic one;
# - reproduce Ioffe & Szegedy's Figure 1 and read it carefully: how far the
#   input of a sigmoid wanders during training, with and without batch norm;
# - switch a trained network to inference mode, and see what goes wrong if you don't.

# %%
import itertools

import numpy as np

from bnlib import batchnorm, nn
from bnlib.course import checks, plots, widgets
from bnlib.lessons.lesson05 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true
from bnlib.lessons.lesson05.explore import pct
from bnlib.course.seeds import LESSON_SEEDS, spread

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The data and the network
#
# scikit-learn ships 1,797 handwritten digits as 8×8 gray images (the UCI
# "optdigits" set): 64 pixel values per image, scaled to [0, 1]. We keep a
# quarter of them as a test set. The network, `bnlib.nn.MLP`, is a stack of
# dense layers; each hidden layer is followed by an activation and, if we ask
# for it, by batch norm *before* the activation:
#
# $$z = xW \;\rightarrow\; \hat z = \frac{z - \mu_B}{\sqrt{\sigma_B^2 + \varepsilon}}
# \;\rightarrow\; \tilde z = \gamma \hat z + \beta \;\rightarrow\; a = \text{sigmoid}(\tilde z)$$
#
# The last layer gives 10 scores (logits), turned into a loss by softmax
# cross-entropy. Training is plain minibatch SGD with batches of 60 images.

# %%
split = explore.digits()
print(f"train {split.x_train.shape}, test {split.x_test.shape}, pixel range "
      f"[{split.x_train.min():.0f}, {split.x_train.max():.0f}], {np.unique(split.y_train).size} classes")
plain = nn.MLP((64, 100, 100, 10), norm=None, seed=0)
with_bn = nn.MLP((64, 100, 100, 10), norm="batch", seed=0)
print("plain:     ", plain.param_names(), plain.n_params(), "parameters")
print("batch norm:", with_bn.param_names(), with_bn.n_params(), "parameters")
assert "b1" not in with_bn.param_names() and "gamma1" in with_bn.param_names()

# %% [markdown]
# The batch-norm network has no `b1`, `b2`: a bias added just before batch
# norm is pointless, as the next section shows, and β takes its place. Each
# batch-norm layer stores four vectors: γ and β are **learned by gradient
# descent** like the weights; the moving mean and variance are **not** learned,
# they are exponential moving averages of the batch statistics (lesson 02's
# machinery), kept for test time.
#
# ## One training step, written out
#
# Here is one SGD step of a 64-100-10 network with batch norm, by hand, using
# bnlib's batch-norm forward and backward functions from lessons 03 and 04.
# First the forward pass and the loss:

# %%
model = nn.MLP((64, 100, 10), norm="batch", seed=1)
W1, W2, b2 = model.weights[0].copy(), model.weights[1].copy(), model.biases[1].copy()
gamma, beta = np.ones(100), np.zeros(100)
moving_mean, moving_variance = np.zeros(100), np.ones(100)
rows = rng.choice(len(split.x_train), size=60, replace=False)
xb, yb = split.x_train[rows], split.y_train[rows]

z = xb @ W1                                    # dense layer, no bias
z_bn, cache, moving_mean, moving_variance = batchnorm.batchnorm_forward(
    z, gamma, beta, moving_mean, moving_variance, training=True)
a = 1.0 / (1.0 + np.exp(-z_bn))                # sigmoid
logits = a @ W2 + b2
loss, dlogits = nn.softmax_cross_entropy(logits, yb)
print(f"loss {loss:.4f} (chance level ln 10 = {np.log(10):.4f})")

# %% [markdown]
# Then the backward pass, layer by layer in reverse. Batch norm's backward
# returns three gradients: for its input, and for γ and β.

# %%
dW2, db2 = a.T @ dlogits, dlogits.sum(axis=0)
da = dlogits @ W2.T
dz_bn = da * a * (1.0 - a)                     # sigmoid'(z) = a (1 - a)
dz, dgamma, dbeta = batchnorm.batchnorm_backward(dz_bn, cache)
dW1 = xb.T @ dz

model_loss, model_dlogits = nn.softmax_cross_entropy(model.forward(xb, training=True), yb)
model.backward(model_dlogits)
print(model.param_names())
for name, mine, ref in zip(model.param_names(), (dW1, dgamma, dbeta, dW2, db2), model.grads()):
    assert_close(f"d{name}: by hand vs nn.MLP", mine, ref, 1e-12)

# %% [markdown]
# The update treats γ and β exactly like the weights: a step against their
# gradient. (Any other optimizer, momentum or Adam say, would also treat them
# like weights.) After the step, the network's parameters match ours.

# %%
lr = 0.5
W1, gamma, beta, W2, b2 = (p - lr * g for p, g in zip((W1, gamma, beta, W2, b2),
                                                         (dW1, dgamma, dbeta, dW2, db2)))
nn.sgd_step(model, lr)
for name, mine, ref in zip(model.param_names(), (W1, gamma, beta, W2, b2), model.params()):
    assert_close(f"{name} after the step", mine, ref, 1e-12)
print(f"|dgamma| mean {np.abs(dgamma).mean():.2e}, |dbeta| mean {np.abs(dbeta).mean():.2e}: "
      "both non-zero, so gamma and beta move")
assert np.abs(dgamma).min() > 0 and np.abs(dbeta).min() > 0

# %% [markdown]
# ## Why the bias before batch norm is dropped
#
# Add any bias $b$ to $z$: every example in the batch gets the same $b$, so
# the batch mean grows by exactly $b$ and the subtraction removes it. The
# output does not change, so the loss cannot depend on $b$ and its gradient,
# the batch sum of $\partial L/\partial z$, is zero. β does the shifting instead.

# %%
b = rng.normal(0.0, 3.0, 100)
out_plain = batchnorm.batchnorm_forward(z, gamma, beta, np.zeros(100), np.ones(100),
                                        training=True)[0]
out_bias = batchnorm.batchnorm_forward(z + b, gamma, beta, np.zeros(100), np.ones(100),
                                       training=True)[0]
assert_close("BN(z + b) - BN(z)", out_bias, out_plain, 1e-9)
assert_below("max |dL/db| = max |sum of dz over the batch|", np.abs(dz.sum(axis=0)).max(), 1e-12)
print("the bias changes nothing and gets no gradient: beta does its job")

# %% [markdown]
# ## With and without batch norm
#
# Now the real comparison: the 64-100-100-10 network with sigmoid units,
# learning rate 0.5, 600 steps (about 27 passes over the training set), each
# version trained from the lesson's three seeds, `LESSON_SEEDS` (a seed sets
# both the initial weights and the order of the minibatches). One seed is an
# anecdote, so every claim about training in this lesson is measured on
# several: the curves show the median over the seeds and, shaded, the range
# from the lowest to the highest.

# %%
settings = dict(lr=0.5, steps=600)
curves = {label: explore.seed_curves(norm, LESSON_SEEDS, **settings)
          for label, norm in explore.NORMS.items()}
fig = explore.curves_figure(
    curves, "64-100-100-10 sigmoid network, lr 0.5: median and range of 3 seeds")

# %% [markdown]
# `explore.speed_up(seeds)` measures the claim on every seed: the
# first evaluation step (every 10 steps) at 90% test accuracy, and where both
# networks stand on the way. The tests run the same function on five other seeds.

# %%
speed = explore.speed_up(LESSON_SEEDS, **settings)
for label in explore.NORMS:
    print(f"{label:10s} test accuracy at step 200: {pct(speed.values['at_200'][label])}; "
          f"at step 600: {pct(speed.values['final'][label])}")
speed.check()

# %% [markdown]
# With batch norm, the network reaches 90% test accuracy in less than half
# the steps on the median seed, and on every seed it ends at least as well.
# That is the factor the paper found too. Ioffe & Szegedy's headline, 14 times
# fewer steps for an ImageNet classifier, belongs to "BN-x5", which changed much
# more than batch norm: a learning rate 5 times larger, no dropout, 5 times less
# L2 regularization, a 6 times faster learning-rate decay, no local response
# normalization, more thorough shuffling and milder photometric distortions. Their "BN-Baseline", the same network with batch norm added and
# nothing else changed, needed "less than half" the steps (13.3 against 31.0
# million, a factor 2.3). On this small problem the factor is about 2.4, the
# median over the fifteen seeds we tried, which range from 1.6 to 3.6. Why? In the
# plain network, the inputs of the sigmoids start small (LeCun initialization keeps them near
# zero) and their scale is set by the weights, which SGD changes slowly and
# all at once. Batch norm hands each unit a standardized input on every step,
# whatever the weights are doing, so every layer can learn from the start.
#
# ## How large may the learning rate be?
#
# A learning rate that is too large makes SGD overshoot. We sweep it over
# half-decades, train each network for 300 steps from the three seeds, and call
# a setting "trains" if every seed ends at 90% test accuracy or more,
# *reproducibly*. That last word matters at large learning rates, where
# training can become **chaotic**: nudge the initial weights by one part in
# $10^{15}$ (the size of a rounding error) and the run ends somewhere else
# entirely. Its result is then luck, and another CPU, which rounds a few
# products differently, would get another one. `explore.sensitivity`
# measures this for every run (it trains the run again with the nudge; the
# last section of the lesson looks at it closely): the plot marks chaotic runs
# with an x, and the printout gives them a verdict, not a number. This sweep
# uses ReLU units, whose outputs are unbounded, so too large a step really
# blows the activations up (sigmoids instead saturate and stall; try them in
# the explorer below).

# %%
lr_claim = explore.learning_rates(LESSON_SEEDS)
fig = explore.sweep_figure(lr_claim.values["sweeps"], xlabel="learning rate",
                                   title="ReLU network, 300 steps")

# %%
for label, sweep in lr_claim.values["sweeps"].items():
    print(f"{label:10s}", "  ".join(f"lr {v:g}: {verdict}"
                                    for v, verdict in zip(sweep.values, sweep.verdicts())))
print("largest learning rate that trains every seed:", lr_claim.values["largest"])
lr_claim.check()

# %% [markdown]
# Batch norm trains every seed up to learning rate 3, the plain network only
# up to 0.3: the rate you can rely on goes up tenfold. At rate 1 the plain
# network trains chaotically on most seeds: it happens to reach 90% on some
# (about half of the fifteen seeds we tried) and ends far below on others, and
# which seeds succeed can change with the last bit of the weights. Counting
# those lucky seeds, the gain is threefold, and it is at least that on every
# seed: at rate 3 and above the plain network fails on every seed while batch
# norm still trains. Batch norm does not make *any* learning rate safe,
# though: at rate 10 most of its runs are chaotic too, and none of those we
# tried came near 90%. A wider range of usable learning rates also means less
# time spent tuning one.
#
# Why does it help? Scale the weights of a layer by $c$: its pre-activations
# scale by $c$, and batch norm divides that right back out. So a large step
# that inflates the weights does not inflate the next layer's input. The
# gradient with respect to those weights shrinks like $1/c$ while the weights
# grow like $c$, so a step changes them by a fraction that shrinks like
# $1/c^2$: a layer whose weights have grown slows itself down. The next section
# measures exactly this.
#
# ## How careful must the initialization be?
#
# The same idea predicts that batch norm should not care much about the scale
# of the initial weights. We draw the weights from $N(0, s^2/\text{fan-in})$
# with $s$ from 0.01 to 100 (four orders of magnitude) and train the sigmoid
# network for 300 steps at learning rate 1, from the three seeds.

# %%
init_claim = explore.init_scales(LESSON_SEEDS)
fig = explore.sweep_figure(init_claim.values["sweeps"], xlabel="initialization scale s",
                                   title="sigmoid network, lr 1, 300 steps")

# %%
print("final test accuracy, median (lowest-highest) of 3 seeds:")
for label, sweep in init_claim.values["sweeps"].items():
    print(f"{label:10s}", "  ".join(f"s={v:g}: {text}"
                                    for v, text in zip(sweep.values, sweep.summaries())))
init_claim.check()

# %% [markdown]
# Without batch norm, tiny weights make every sigmoid input nearly zero, the
# layers pass along almost no signal and no useful gradient, and 300 steps are
# not enough to escape; huge weights saturate the sigmoids, and at $s = 100$
# both networks train chaotically (the first gradients are enormous). The
# batch-norm claim is about the median seed: on two of the fifteen seeds we
# tried, batch norm at $s = 0.01$ ends under 90% after 300 steps (it gets
# there, more slowly).
#
# Why is batch norm so indifferent to $s$? Its hidden layers are
# *scale-invariant*: multiply $W$ by $s$ and batch norm divides $z = xW$ by
# $s$ again, so the network computes the same function. It does not *learn*
# the same way, though. The gradient with respect to $W$ is $s$ times smaller
# while $W$ is $s$ times larger, so each SGD step changes $W$ by a fraction
# $1/s^2$ of what it would at $s = 1$. A good way to see it is the
# update-to-weight ratio of each layer, $\text{lr}\,\lVert \nabla W\rVert / \lVert W\rVert$,
# the size of a step relative to the weights (a diagnostic
# Andrej Karpathy recommends watching; around $10^{-3}$ is a common rule of
# thumb). To separate the causes, we also scale the hidden layers and the
# output layer (which has no batch norm after it) separately:

# %%
causes = explore.init_causes(LESSON_SEEDS)
fig = explore.updates_figure(causes)

# %%
for name in explore.INIT_CAUSES:
    if np.any(causes.values["sensitivity"][name] > explore.REPRODUCIBLE):
        print(f"{name:26s} chaotic: no numbers (see the checks below)")
        continue
    change = np.median(causes.values["change"][name], axis=0)
    print(f"{name:26s} final test accuracy {pct(causes.values['final'][name])}; hidden weights "
          f"moved by {change[0]:.0e} and {change[1]:.0e} of their norm (median)")
causes.check()

# %% [markdown]
# At $s = 100$ the hidden weights are **frozen**: each step moves them by a few
# millionths of their norm, and the whole run by less than a thousandth,
# against about half at $s = 1$. The per-step ratio falls by about three
# thousand: the order of the $1/s^2 = 10^4$ that scale invariance predicts (the
# match is rough because the two networks then learn different things), far
# beyond the $1/s = 100$ of the gradient alone. The network is then a fixed random
# projection of the input, standardized by batch norm, with only γ, β and
# the output layer learning, and that alone reaches 94-95% on the digits.
# The output layer is a different matter: scaled by 100, its logits start
# huge, the first steps are violent and the training turns chaotic (it still
# ends above 80% on every seed). So at $s = 100$ batch norm "works" for two
# separate reasons, neither of them "the gradients are a little smaller". On
# a harder task, frozen hidden layers would cost far more than they do here.
#
# The small scales are different again: the variance of $z = xW$ becomes
# small compared with ε = 1e-3, and ε takes over the denominator, as the
# spread of the sigmoid inputs at initialization shows:

# %%
input_std = {}
for s in explore.INIT_SCALES:
    net = nn.MLP((64, 100, 100, 10), norm="batch", init_scale=s, seed=0)
    net.forward(split.x_train[:60], training=True)
    input_std[s] = [p.std(axis=0).mean() for p in net.pre_activations]
    print(f"s = {s:6g}: std of the sigmoid inputs, layer 1 {input_std[s][0]:.2f}, "
          f"layer 2 {input_std[s][1]:.3f}")
assert all(abs(v - 1) < 0.02 for s in (1.0, 10.0, 100.0) for v in input_std[s])
_ = assert_below("at s = 0.01 the second layer's inputs: a hundred times narrower than 1",
                 input_std[0.01][1], 0.01, show=".3f")

# %% [markdown]
# From $s = 1$ upwards every unit gets a unit-spread input. Below that the
# variance of $z$ falls towards ε and then under it: at $s = 0.1$ the inputs are
# already narrower, and at $s = 0.01$ batch norm computes
# $z/\sqrt{\sigma_B^2 + \varepsilon} \approx z/\sqrt{\varepsilon}$: the second
# layer's sigmoids see inputs more than a hundred times narrower than they
# should. The batch-norm network still trains from there, and well: the same
# scale argument works the other way round, tiny weights take relatively huge
# steps, and over the run they grow to more than ten times their initial size
# (checked above), out of the ε regime. The plain network has no such mechanism.
#
# ## Deeper networks
#
# Depth makes all of this worse. In a plain sigmoid network each layer
# multiplies the backpropagated gradient by $W^\top$ and by
# $\text{sigmoid}' \le 1/4$, so it shrinks layer after layer. Compare the
# gradient that reaches the first and the last weight matrix of a network with
# eight hidden layers of 50 units, at initialization:

# %%
deep = explore.DEEP_SIZES
ratio = {}
for label, norm in explore.NORMS.items():
    net = nn.MLP(deep, norm=norm, seed=0)
    net.backward(nn.softmax_cross_entropy(net.forward(split.x_train[:60], training=True),
                                          split.y_train[:60])[1])
    grads = dict(zip(net.param_names(), net.grads()))
    ratio[label] = np.linalg.norm(grads["W1"]) / np.linalg.norm(grads["W9"])
    print(f"{label:10s} |dW1| / |dW9| = {ratio[label]:.2g}")
assert_true("the first layer of the plain network gets a vanishing gradient", ratio["plain"] < 1e-3)
assert_true("with batch norm it does not", ratio["batch norm"] > 0.1)

# %% [markdown]
# Does the batch-norm network then train, where the plain one cannot? Eight
# hidden layers, learning rate 1, 300 steps, the three seeds:

# %%
eight = explore.depth(LESSON_SEEDS)
for label, final in eight.values["final"].items():
    print(f"{label:10s} final test accuracy {pct(final)}")
eight.check()

# %% [markdown]
# The plain network does not move from chance level on any seed. The
# batch-norm network learns on every seed; at this learning rate its last
# steps still wobble, so one seed happens to end lower than the others. Batch
# norm rescales each layer's signal on the way forward, and therefore
# also the gradient on the way back (its backward pass multiplies by
# $\gamma/\sigma_B$), so the gradient reaches the first layers with a usable
# size.
#
# ### How deep? Batch norm alone is not the whole story
#
# Eight layers is not deep. Does batch norm keep deeper networks trainable?
# Yang et al. (2019) showed that it does not, on its own: in a deep network
# *without skip connections*, batch norm makes the gradients at
# initialization **explode** with depth, layer after layer, whatever the
# initialization. What made networks of a hundred layers and more trainable was the
# combination with **residual (skip) connections** (He et al. 2016), where each
# layer adds its output to its input, $h \leftarrow h + f(h)$
# (`nn.MLP(..., residual=True)`). We measure all three, with ReLU units
# (He initialization, $s = \sqrt 2$, so that the plain network's signal keeps its
# size) and 8 to 64 hidden layers of 50 units: the per-layer gradient norms at
# initialization, and the test accuracy after 200 steps at learning rate 0.1.
# The 36 trainings, 64-layer ones among them, would take longer than the rest
# of the lesson, so they were run ahead of time by the same code,
# `explore.depth_finals(LESSON_SEEDS)` (the tests train them again).

# %%
assert explore.depth_table_seeds() == LESSON_SEEDS
deep_claim = explore.depth_claim(LESSON_SEEDS, finals=explore.depth_table())
fig = explore.depth_figure(deep_claim)

# %%
for net, depth in itertools.product(explore.DEPTH_NETS, explore.DEPTHS):
    print(f"{net:18s} {depth:2d} layers: |dW1| / |dW{depth}| at initialization "
          f"{spread(deep_claim.values['ratio'][net, depth], '.0e')}")
deep_claim.check()

# %% [markdown]
# What the measurement supports. Without skip connections, batch norm's
# gradient ratio grows with depth, a few times at 8 layers and hundreds of
# thousands of times at 64: the first layers get gradients far too large for
# any learning rate that suits the last ones, and from 32 layers on that
# network does not learn in our runs (neither does the plain one). With skip
# connections the ratio stays in the tens, and the network learns at 32 and 64
# layers, slowly and unevenly at 64 (the seeds spread widely, see the band).
# The plain ReLU network's gradients keep their size at initialization (that
# is what He initialization is for) and it still fails beyond 16 layers, so
# well-sized gradients at the start are not enough either. Several of these
# runs are chaotic (16 layers without skips, 32 and 64 with), which is why the
# checks are verdicts with wide margins. In short: batch norm helps at moderate
# depth, and very deep networks became trainable through batch norm *together
# with* residual connections, not through batch norm alone.
#
# ## Before or after the activation?
#
# The original paper puts batch norm between the dense layer and the
# nonlinearity, and that is the usual choice (and the one Keras's examples
# use with `use_bias=False`). Some practitioners put it after the activation.
# Measured here on the three seeds, for sigmoid (lr 0.5, 600 steps) and ReLU
# (lr 0.3, 300 steps):

# %%
place = explore.placement(LESSON_SEEDS)
for act, pos in place.values["final"]:
    v = {name: place.values[name][act, pos] for name in ("at_100", "final", "train_loss")}
    print(f"{act:7s} BN {pos:6s}: test accuracy at step 100 {pct(v['at_100'])}, "
          f"final {pct(v['final'])}; final training loss {spread(v['train_loss'], '.3f')}")

# %%
place.check()

# %% [markdown]
# What the numbers say, and no more: with sigmoids, "before" gets going
# faster on every seed, plausibly because it feeds each sigmoid a centred
# input, right in its responsive region. At the end, both placements reach the
# same test accuracy within our noise (a few hundred test images, a few
# seeds), for sigmoid and ReLU alike; "after" even fits the training set a bit
# more tightly. On this small problem neither placement wins clearly at the
# end: "before" is a sensible default, not a law, and on your own problem it
# is worth measuring.
#
# ## Ioffe & Szegedy's Figure 1, on the digits
#
# The paper that introduced batch norm opens its experiments with a small
# test. **Their setup:** MNIST (28×28 images), a network with three
# fully-connected hidden layers of 100 sigmoid units, batch norm added before
# each sigmoid or not at all, 50,000 SGD steps with 60 examples per
# minibatch. They plot (a) test accuracy and (b, c) the 15th, 50th and 85th
# percentiles of the input of one sigmoid in the last hidden layer, over
# training. **Ours:** the 8×8 digits (1,347 training images), the same three
# hidden layers of 100 sigmoids, LeCun initialization, learning rate 0.5,
# 2,000 steps of 60 examples; the percentiles are taken over 200 test images
# fed through the network as during training (batch statistics), every 20
# steps. The paper's panels (b, c) show steps 10,000 to 50,000, long after
# the start; we show the whole run. The paper shows one run; we train each
# network from the three seeds and follow unit 0 of the last hidden layer in
# each (with other initial weights it is another unit, so the curves differ
# from seed to seed).

# %%
fig1 = explore.figure1_claim(LESSON_SEEDS)
hists = fig1.values["histories"]
fig = explore.figure1_figure(hists["plain"], hists["batch norm"], LESSON_SEEDS)

# %%
for step, label in itertools.product((100, 500, 2000), explore.NORMS):
    print(f"step {step:4d}, {label:10s}: test accuracy {pct(fig1.values['accuracy'][label][step])}")
for label in explore.NORMS:
    print(f"{label:10s} band width p85 - p15 at step 0: "
          f"{spread(fig1.values['initial_width'][label], '.2f')}")
    for what, key in (("whole run", "whole"), ("from step 500", "range")):
        moved = np.median(fig1.values[key][label], axis=0)
        print(f"{label:10s} {what:13s}: p15 / p50 / p85 moved by {moved[0]:.1f} / "
              f"{moved[1]:.1f} / {moved[2]:.1f} (median of the seeds)")
fig1.check()

# %% [markdown]
# Read with care, the figure says three things.
#
# - **The start is a plateau, not drift.** Without batch norm the last hidden
#   layer starts collapsed: the input of its sigmoid is a sliver a few
#   hundredths wide, because each sigmoid layer passes on the variations of
#   its input multiplied by its slope, at most 1/4 (the LeCun-scaled weights
#   keep the size otherwise). The network sits at chance for a few hundred
#   steps, and part of the movement over the whole run is just the band
#   leaving that sliver (compare the two lines printed for it above). Batch
#   norm hands the unit a standardized input from the first step, so there is
#   no plateau to leave.
# - **After the plateau the band still moves more without batch norm.** From
#   step 500 on (the dotted line), in units of the sigmoid's input, the scale
#   on which the sigmoid bends, the plain network's band moves several times
#   farther than batch norm's on every seed, and this stays true measured
#   against each network's own typical band width over the same steps.
#   (Dividing by the *final* width alone, as one might first try, would favour
#   batch norm twice: its band is wider, and the plateau is excluded only for
#   the plain network.)
# - **With batch norm the band is not fixed either.** It widens as training
#   goes on, and the tracked unit's γ grows with it: batch norm fixes the
#   distribution of $\hat z$, and the network then learns the scale and shift
#   it wants through γ and β.
#
# The paper calls the moving distribution *internal covariate shift* and
# credits batch norm's speed to removing it: the last layer, in that story,
# stops aiming at a moving target. This figure shows that the distribution
# moves less; it does not show that this is *why* training is faster. That is a
# hypothesis, and lesson 06 tests it, with results that put it in doubt.
#
# ## What training did to γ and β, and the switch at test time
#
# Take the batch-norm networks trained above (sigmoid, 600 steps). Their γ
# and β moved away from 1 and 0: the networks chose a different scale and
# shift for their units than plain standardization. Here are the ranges for
# seed 0, and the largest change in the first layer for every seed:

# %%
trained, _ = explore.run("batch", lr=0.5, steps=600, seed=0)
for k, layer in enumerate(trained.norms, start=1):
    print(f"seed 0, layer {k}: gamma in [{layer.gamma.min():.2f}, {layer.gamma.max():.2f}], "
          f"beta in [{layer.beta.min():.2f}, {layer.beta.max():.2f}]")
explore.gamma_beta_moved(LESSON_SEEDS).check()

# %% [markdown]
# At test time the network must switch to **inference mode**: normalize with
# the moving mean and variance collected during training. Then an example's
# prediction does not depend on which other examples share its batch, and a
# single example can be classified. Forgetting the switch means normalizing
# each test batch with its own statistics:

# %%
modes = explore.inference_modes(LESSON_SEEDS)
for name, values in modes.values["modes"].items():
    print(f"{name:20s} test accuracy {pct(values)}")
alone = trained.forward(split.x_test[:1], training=False)
in_batch = trained.forward(split.x_test[:50], training=False)[:1]
_ = assert_close("inference mode: example 0 alone vs in a batch of 50", alone, in_batch, 1e-12)
modes.check()

# %% [markdown]
# A batch of one is normalized to all zeros, so every example gets the same
# prediction; small batches give noisy statistics. A large test batch happens
# to work here because its statistics are close to the training ones, but the
# prediction for one image would still depend on the others. Inference mode
# removes both problems. (Lesson 08 looks at what goes wrong when the moving
# statistics themselves are off.)
#
# ## Explorer: train a network yourself
#
# Pick a learning rate, an initialization scale and batch norm on or off: the
# plot shows a 64-100-100-10 sigmoid network trained for 300 steps with that
# setting, one thin line per seed (the three lesson seeds), and, dashed, its
# *twin*: the same setting with batch norm switched the other way. Every
# setting was trained ahead of time with exactly the code this lesson uses,
# `explore.run`, so the plot follows the sliders at once. The readout gives
# each seed a verdict: **trains** (90% or more at step 300), **slow**
# (learning, but below 90% at step 300), **stuck at chance** (below 15%),
# **diverged** (at the end the loss is still above 10 ln 10, ten times chance
# level: the weights or the logits have blown up, far beyond any slow
# training; an early spike that training recovers from does not count) or **chaotic** (a 1e-15 nudge of the initial weights grows into a different
# curve, so the numbers are not printed: another CPU would draw another one).
# To train a setting yourself, including one the sliders do not offer, call
# `explore.run("batch", lr=0.5, init_scale=2.0, seed=0)` (`None` instead of
# `"batch"` for no batch norm): it returns the model and its history. Things
# to try: learning rate 10 with and without batch norm; init scale 0.01 or
# 100; learning rate 30 (even batch norm has limits).

# %% tags=["nbval-ignore-output"]
explore.run_explorer()

# %% [markdown]
# The explorer's starting point (learning rate 1, scale 1, batch norm on, with
# its twin), and a setting that diverges. Below, the stored runs are checked
# against a fresh training of seed 0: the loss curve, the test accuracy and
# the moving statistics that inference mode uses.

# %%
print(widgets.readout(explore.RunScene, lr=1.0, init_scale=1.0, batch_norm=True))
print(widgets.readout(explore.RunScene, lr=30.0, init_scale=100.0, batch_norm=False))
stored, stored_sensitivity = explore.explorer_run(1.0, 1.0, True, seed=0)
model, fresh = explore.run("batch", lr=1.0, seed=0)
_ = assert_close("loss curve: stored vs fresh", stored.loss, fresh.loss, 1e-9)
_ = assert_close("test accuracy: stored vs fresh", stored.test_accuracy, fresh.test_accuracy, 1e-12)
moving = explore.table_moving_statistics()[1.0, 1.0, True, 0]
_ = assert_close("moving mean and variance: stored vs fresh",
                 moving, [[n.moving_mean for n in model.norms],
                          [n.moving_variance for n in model.norms]], 1e-9)
assert_true("the starting point is reproducible on every seed",
            all(explore.explorer_run(1.0, 1.0, True, s)[1] < explore.REPRODUCIBLE
                for s in explore.EXPLORER_SEEDS))
assert_true("lr 30, init scale 100, no batch norm: diverged on every seed",
            all(explore.run_verdict(*explore.explorer_run(30.0, 100.0, False, s)) == "diverged"
                for s in explore.EXPLORER_SEEDS))

# %% [markdown]
# ### Stable and chaotic training
#
# The stored runs and the fresh training agree to rounding here. Another CPU may
# round the last bit of some products differently: does that matter?
# `explore.sensitivity` measures it: it trains a setting again with
# every initial weight nudged by one part in $10^{15}$ and returns the largest
# relative change of the loss curve. At learning rate 10 and 30, on the
# three seeds (printed as a bound: the exact value of a chaotic run's change
# is itself round-off):

# %%
stable = explore.stability(LESSON_SEEDS)
for name, values in stable.values["sensitivity"].items():
    print(f"{name:18s}", ", ".join(f"seed {s}: {explore.sensitivity_bound(v)}"
                                   for s, v in zip(LESSON_SEEDS, values)))
stable.check()

# %% [markdown]
# With batch norm at learning rate 10, the nudge stays tiny on every seed: the
# run is a stable function of its settings, and the explorer's numbers are the
# ones any CPU would print. Without batch norm, at this learning rate, the
# network either stops learning (its sigmoids saturate and it sits at chance
# level, reproducibly) or trains chaotically: the tiny difference is amplified
# step after step until the curve is a different one. At learning rate 30
# even batch norm's runs are chaotic, and so are some other extreme settings
# of the explorer (the readout says which). There, the explorer shows the run
# as trained on the course's machine; yours may draw a different, equally
# valid curve, which is one more reason to judge a setting by several seeds
# rather than one run.

# %% [markdown]
# ## What the source notes get wrong
#
# - One note counts the easy training of very deep networks among batch norm's
#   benefits, and another presents batch norm as a guard against vanishing and
#   exploding gradients. Without skip connections the measurement says the
#   opposite for depth: at initialization batch norm makes the gradient
#   ratio between the first and the last hidden layer *explode* with depth,
#   and from 32 ReLU layers on the network does not reach 50% here; with
#   residual connections it trains (section "How deep?").
# - A note says that with batch norm the weight initialization no longer needs
#   care. The final accuracy agrees on this task, but not for the reason one
#   would think: at a hundred times the usual scale the hidden layers of the
#   batch-norm network hardly learn at all (they move by less than 0.2% of
#   their norm over the run), and the accuracy comes from γ, β and the output
#   layer learning on top of frozen random features.

# %%
worst = deep_claim.values["ratio"]["batch norm", 64]
assert_true("64 ReLU layers, batch norm, no skips: |dW1| / |dW64| at initialization above 1e4 "
            "on every seed", np.all(worst > 1e4), spread(worst, ".0e"))
assert_true("and no seed reaches 50% at 32 or 64 layers",
            all(np.all(deep_claim.values["final"]["batch norm", d] < 0.5) for d in (32, 64)))
frozen = causes.values["change"]["hidden x100, output x1"][:, :2].max(axis=1)
assert_true("hidden weights x100: moved by less than 0.2% of their norm, on every seed",
            np.all(frozen < 2e-3))

# %% [markdown]
# ## Key takeaways
#
# - In a network, batch norm sits between the dense layer (which then needs no
#   bias) and the activation. γ and β are trained by gradient descent with
#   everything else; the moving statistics are smoothed, not trained.
# - Measured on the digits, over several seeds: training reaches 90% in less
#   than half the steps (median over seeds); the learning rate that trains every seed
#   goes up tenfold (threefold if you count the plain network's lucky seeds);
#   initialization scales over four orders of magnitude all end above 80% (the
#   plain network needs the right one), largely because hidden layers behind
#   batch norm are scale-invariant: their steps shrink like $1/s^2$, so at
#   $s = 100$ they are frozen and only γ, β and the output layer learn; an
#   eight-layer sigmoid network learns where the plain one stays at chance.
# - Depth: without skip connections, batch norm makes the initial gradients
#   explode with depth and stops training by 32 ReLU layers here; with
#   residual connections the network trains at 32 and 64 layers.
# - Some trainings are chaotic: a rounding-sized change of the weights gives
#   another result. Judge them over seeds, never by one run's number.
# - Before or after the activation: before is the common default and was
#   faster early with sigmoids here; the final accuracies were the same.
# - Figure 1 of Ioffe & Szegedy reproduces, read with care: without batch norm
#   the network first sits on a plateau at chance; after it, the input of a
#   deep sigmoid still moves several times farther than with batch norm. Whether
#   that is why batch norm trains faster is lesson 06's question.
# - Always switch to inference mode (moving statistics) at test time.
#
# ## Exercises
#
# **1.** Write the forward pass of one hidden layer in training mode:
# `hidden_layer(x, W, gamma, beta)` returns sigmoid(BN(x @ W)) with the batch
# statistics and ε = 1e-3, for x of shape (N, D_in), W of shape (D_in, D).

# %%
def hidden_layer(x, W, gamma, beta):
    raise NotImplementedError("replace with your code")


_ = exercises.check_network_hidden_layer(hidden_layer)

# %% [markdown]
# **2.** The same layer at test time:
# `inference_layer(x, W, gamma, beta, moving_mean, moving_variance)`, with
# ε = 1e-3. It must work for a single example.

# %%
def inference_layer(x, W, gamma, beta, moving_mean, moving_variance):
    raise NotImplementedError("replace with your code")


_ = exercises.check_network_inference_layer(inference_layer)

# %% [markdown]
# **3.** One SGD step for γ and β: given `dout` (the gradient of the loss
# with respect to the batch-norm output, shape (N, D), already including the
# loss's 1/N), the normalized input `x_hat` (N, D), the current `gamma`,
# `beta` (D,) and the learning rate, return `(new_gamma, new_beta)`.

# %%
def gamma_beta_step(dout, x_hat, gamma, beta, lr):
    raise NotImplementedError("replace with your code")


_ = exercises.check_network_gamma_beta_step(gamma_beta_step)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015, PMLR 37:448–456
#   (Section 4.1 and Figure 1: the MNIST experiment reproduced here).
# - Y. LeCun, L. Bottou, G. Orr and K.-R. Müller, *Efficient BackProp*, in
#   *Neural Networks: Tricks of the Trade*, Springer 1998 (input scaling and
#   the 1/fan-in weight initialization).
# - X. Glorot and Y. Bengio, *Understanding the difficulty of training deep
#   feedforward neural networks*, AISTATS 2010 (saturating sigmoids and
#   vanishing gradients in deep networks).
# - I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016,
#   Section 8.7.1 (batch normalization).
# - scikit-learn documentation, `sklearn.datasets.load_digits` (the UCI optical
#   recognition of handwritten digits data set).
# - Keras documentation, `keras.layers.BatchNormalization`.
