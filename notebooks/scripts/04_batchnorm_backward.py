# %% [markdown]
# # 04 · Batch norm: the backward pass
#
# [Lesson 03](03_batchnorm_forward.ipynb) computed batch norm forward. To
# train γ, β and every weight before the layer, we also need the gradients
# flowing backward through it. What makes this layer interesting is that the
# batch mean and variance are computed *from the inputs*, so every example's
# output depends on every other example in the batch, and the gradient has
# to account for that.
#
# **After this lesson you will be able to**
# - read batch norm as a computational graph and backpropagate through it one
#   node at a time;
# - derive and use the compact formula for dx, and say why it is faster;
# - verify gradients against centred differences (float64) and against
#   TensorFlow's automatic differentiation of the Keras layer (float32);
# - explain two properties of dx: it sums to zero over the batch, and it is
#   (almost) orthogonal to x̂, and what an upstream gradient that is constant
#   across the batch does.

# %%
import timeit

import numpy as np

from bnlib import batchnorm, gradcheck
from bnlib.course import checks, plots
from bnlib.lessons.lesson04 import exercises, explore
from bnlib.course.checks import assert_below, assert_close, assert_true

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The computational graph
#
# Write the forward pass of one feature as a chain of small operations. Each
# box below is one node; the black arrows are the forward pass. In red, next
# to each node, is the rule that turns the gradient arriving at its output
# into gradients for its inputs (the chain rule, one node at a time):
#
# ![batch norm as a computational graph with forward and backward rules](../images/bn-graph.png)
#
# Two features of this graph matter for the backward pass:
#
# - **x reaches the output along two routes**: directly, through
#   `centred = x - μ`, and indirectly, through the mean μ. Its gradient is the
#   sum over both routes.
# - **`centred` is used twice**: to form x̂, and to form the variance (via
#   `sq`). Its gradient is also a sum of two contributions.
#
# The sums Σ run over the batch: μ and σ² are per-feature reductions, so
# their gradients are summed over the examples, and spreading a per-feature
# value back over the batch divides by N.

# %% [markdown]
# ## The forward pass in stages
#
# We keep every intermediate value the backward pass will need. Axis 0 is the
# batch, each column a feature.

# %%
def forward_in_stages(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    centred = x - mu
    sq = centred ** 2
    var = sq.mean(axis=0)
    std = np.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = centred * inv_std
    out = gamma * x_hat + beta
    stages = dict(centred=centred, sq=sq, std=std, inv_std=inv_std, x_hat=x_hat, gamma=gamma)
    return out, stages


# %% [markdown]
# ## The staged backward pass
#
# Now walk the graph from right to left. Each line is the red rule of one
# node; comments name it. The shapes tell a story too: per-feature gradients
# (dγ, dβ, d_inv_std, d_std, d_var, dμ) have shape (D,), per-example ones
# have shape (N, D).

# %%
def backward_in_stages(dout, stages):
    centred, sq, std, inv_std, x_hat, gamma = (stages[k] for k in
                                               ("centred", "sq", "std", "inv_std", "x_hat", "gamma"))
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)                      # out = (gamma * x_hat) + beta
    dgamma = (dout * x_hat).sum(axis=0)           # gamma * x_hat
    dx_hat = dout * gamma
    d_inv_std = (dx_hat * centred).sum(axis=0)    # x_hat = centred * inv_std
    d_centred = dx_hat * inv_std                  #   (first use of centred)
    d_std = -d_inv_std / std ** 2                 # inv_std = 1 / std
    d_var = d_std / (2.0 * std)                   # std = sqrt(var + eps)
    d_sq = np.ones_like(sq) * d_var / n           # var = mean(sq)
    d_centred += 2.0 * centred * d_sq             # sq = centred ** 2  (second use)
    d_mu = -d_centred.sum(axis=0)                 # centred = x - mu
    dx = d_centred + d_mu / n                     # mu = mean(x), plus the direct route
    return dx, dgamma, dbeta


# %% [markdown]
# ## The compact formula
#
# The staged pass is easy to get right but does a lot of separate array
# operations. Collapsing the chain on paper gives one expression. Write
# $s = 1/\sqrt{\sigma^2+\varepsilon}$ (`inv_std`), $g_i = \gamma\,
# \text{dout}_i$ (the gradient at x̂) and $m$ for the batch size. Two
# derivatives do the work: $\partial\mu/\partial x_i = 1/m$, and
# $\partial\sigma^2/\partial x_i = 2(x_i-\mu)/m$ (the part through μ drops
# out because the centred values sum to zero), hence $\partial s/\partial x_i =
# -s^3 (x_i-\mu)/m$. The product rule on $\hat{x}_j = (x_j - \mu)\,s$ then gives
#
# $$\frac{\partial \hat{x}_j}{\partial x_i} = \frac{s}{m}\left(m\,\delta_{ij} - 1 - \hat{x}_i\hat{x}_j\right).$$
#
# Summing $g_j\,\partial\hat{x}_j/\partial x_i$ over $j$:
#
# $$dx_i = \frac{s}{m}\Big(m\,g_i \;-\; \sum_j g_j \;-\; \hat{x}_i \sum_j g_j\,\hat{x}_j\Big),
# \qquad d\gamma = \sum_i \text{dout}_i\,\hat{x}_i, \qquad d\beta = \sum_i \text{dout}_i .$$
#
# The three terms read well: the direct route ($m g_i$), the route through
# the mean (subtract the average gradient), and the route through the
# variance (subtract the part of the gradient along x̂). Note
# $\sum_j g_j \hat{x}_j = \gamma\,d\gamma$, so the formula reuses the
# parameter gradients.

# %%
def backward_compact(dout, stages):
    x_hat, inv_std, gamma = stages["x_hat"], stages["inv_std"], stages["gamma"]
    m = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


# %% [markdown]
# ## Checking the gradients
#
# Three references, from the closest to the most independent:
#
# 1. **bnlib's** `batchnorm_backward` (the compact formula, written separately);
# 2. **numerical gradients**: nudge each input up and down by h = 1e-5 and
#    measure the change of $L = \sum \text{out}\cdot\text{dout}$ (centred
#    differences, `bnlib.gradcheck`). This needs float64: in float32 the
#    rounding of L would swamp the tiny differences;
# 3. **TensorFlow's automatic differentiation** of the real Keras layer.
#
# A batch of 8 examples and 4 features of different scales, float64:

# %%
x = rng.normal(size=(8, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 5.0, -1.0, 2.0]
gamma, beta, eps = rng.uniform(0.5, 2.0, 4), rng.normal(size=4), 1e-3
dout = rng.normal(size=(8, 4))

out, stages = forward_in_stages(x, gamma, beta, eps)
staged = backward_in_stages(dout, stages)
compact = backward_compact(dout, stages)
ref_out, cache, _, _ = batchnorm.batchnorm_forward(x, gamma, beta, np.zeros(4), np.ones(4),
                                                   training=True, eps=eps)
ref = batchnorm.batchnorm_backward(dout, cache)
assert_close("forward: stages vs bnlib", out, ref_out, 1e-12)
for name, a, b, c in zip(("dx", "dgamma", "dbeta"), staged, compact, ref):
    assert_close(f"{name}: staged vs bnlib", a, c, 1e-12)
    assert_close(f"{name}: compact vs bnlib", b, c, 1e-12)

# %% [markdown]
# Now the numerical gradients. `numerical_gradient(f, v, dout)` perturbs the
# array `v` in place, one entry at a time, so each function below reads it
# from its argument:

# %%
zeros, ones = np.zeros(4), np.ones(4)


def out_of_x(x_):
    return batchnorm.batchnorm_forward(x_, gamma, beta, zeros, ones, training=True, eps=eps)[0]


def out_of_gamma(g_):
    return batchnorm.batchnorm_forward(x, g_, beta, zeros, ones, training=True, eps=eps)[0]


def out_of_beta(b_):
    return batchnorm.batchnorm_forward(x, gamma, b_, zeros, ones, training=True, eps=eps)[0]


numerical = [gradcheck.numerical_gradient(f, v.copy(), dout)
             for f, v in ((out_of_x, x), (out_of_gamma, gamma), (out_of_beta, beta))]
for name, s, c, num in zip(("dx", "dgamma", "dbeta"), staged, compact, numerical):
    assert_below(f"relative error {name}, staged vs numerical", gradcheck.rel_error(s, num), 1e-7)
    assert_below(f"relative error {name}, compact vs numerical", gradcheck.rel_error(c, num), 1e-7)

# %% [markdown]
# Relative errors between about 1e-8 and 1e-11 are what centred differences
# can reach in float64. A wrong gradient stands out by orders of magnitude:
# drop the route through the variance (keep only the first two terms of the
# compact formula) and the error jumps:

# %%
s_, g_ = stages["inv_std"], gamma * dout
dx_no_var_route = s_ * (g_ - g_.mean(axis=0))
wrong = gradcheck.rel_error(dx_no_var_route, numerical[0])
assert_true("a gradient missing the variance route fails the check", wrong > 1e-2,
            f"relative error {wrong:.2f}")

# %% [markdown]
# Finally, Keras: `bnlib.tf_compare` builds a
# `keras.layers.BatchNormalization` in float32, sets its γ and β, and asks
# `tf.GradientTape` for the gradients of the same $L$ (importing TensorFlow
# takes several seconds):

# %%
from bnlib import tf_compare

keras_grads = tf_compare.keras_batchnorm_gradients(x.astype(np.float32), gamma, beta,
                                                   dout.astype(np.float32), eps=eps)
print("Keras gradients are", keras_grads[0].dtype)
for name, k, c in zip(("dx", "dgamma", "dbeta"), keras_grads, compact):
    assert_close(f"{name}: Keras autodiff (float32) vs compact (float64)", k, c, 1e-5)

# %% [markdown]
# The differences are float32 round-off: our hand-derived gradients and the
# framework's automatic ones agree.

# %% [markdown]
# ## Two properties of dx you can check on any batch
#
# **dx sums to zero over the batch, for each feature.** Shift every example's
# input by the same constant c: the batch mean shifts by c too and x̂ does not
# change at all (this is why a bias before batch norm is useless, lesson 03).
# The loss does not change along the direction "all ones", so the gradient
# has no component along it: $\sum_i dx_i = 0$.
#
# **dx is orthogonal to x̂, up to ε.** Stretch the centred inputs by a factor
# $(1+t)$: without ε, x̂ would not change either, so the gradient would have no
# component along the centred inputs, that is along x̂. With ε the stretch
# changes x̂ very slightly, and the compact formula gives exactly what
# remains: $\sum_i dx_i\,\hat{x}_i = \gamma\, s\, d\gamma \cdot
# \frac{\varepsilon}{\sigma^2+\varepsilon}$ per feature.

# %%
dx = compact[0]
var = x.var(axis=0)
assert_below("largest |sum of dx over the batch|", np.abs(dx.sum(axis=0)).max(), 1e-12)
along_x_hat = (dx * stages["x_hat"]).sum(axis=0)
predicted = gamma * stages["inv_std"] * compact[1] * eps / (var + eps)
assert_close("sum of dx * x_hat vs gamma * s * dgamma * eps / (var + eps)", along_x_hat,
             predicted, 1e-12)
cosine = np.abs(along_x_hat) / (np.linalg.norm(dx, axis=0) * np.linalg.norm(stages["x_hat"], axis=0))
print("|cos(dx, x_hat)| per feature:", np.round(cosine, 5))
_ = assert_below("largest |cos(dx, x_hat)| with eps = 1e-3", cosine.max(), 1e-2)

# %% [markdown]
# With a negligible ε the leftover vanishes and dx is orthogonal to x̂ to
# round-off:

# %%
_, tiny = forward_in_stages(x, gamma, beta, 1e-12)
dx_tiny = backward_compact(dout, tiny)[0]
cos_tiny = np.abs((dx_tiny * tiny["x_hat"]).sum(axis=0)) / (
    np.linalg.norm(dx_tiny, axis=0) * np.linalg.norm(tiny["x_hat"], axis=0))
_ = assert_below("largest |cos(dx, x_hat)| with eps = 1e-12", cos_tiny.max(), 1e-9)

# %% [markdown]
# So the gradient that reaches the layer below has had two directions removed
# per feature: the shift along "all ones" and (almost exactly) the stretch
# along x̂. Whatever the loss "wants" from a plain shift or rescaling of the
# layer's inputs, batch norm absorbs it, and only γ and β receive it
# (through dβ and dγ).

# %% [markdown]
# ## Staged vs compact: speed
#
# Both give the same numbers; the compact formula does fewer passes over the
# (N, D) arrays and allocates fewer temporaries. On a realistic layer, a
# batch of 256 examples with 512 features (timings vary from machine to
# machine, so this cell's output is not checked):

# %% tags=["nbval-ignore-output"]
big_x = rng.normal(size=(256, 512))
big_dout = rng.normal(size=(256, 512))
_, big = forward_in_stages(big_x, np.ones(512), np.zeros(512), 1e-3)
t_staged = min(timeit.repeat(lambda: backward_in_stages(big_dout, big), number=20, repeat=3)) / 20
t_compact = min(timeit.repeat(lambda: backward_compact(big_dout, big), number=20, repeat=3)) / 20
print(f"staged {t_staged * 1e3:.2f} ms, compact {t_compact * 1e3:.2f} ms per backward pass: "
      f"the compact one is {t_staged / t_compact:.1f}x faster")

# %% [markdown]
# ## Explorer: where the gradient goes
#
# Pick the upstream gradient `dout` arriving at one feature and the batch
# size. Blue bars are `dout` per example, orange bars the `dx` that batch norm
# passes down (γ = 1.5). Things to try:
#
# - **all ones**: the loss would like every output to move the same way. That
#   is a pure shift, which batch norm removes: dx is zero and all of it goes
#   to dβ (= N).
# - **one-hot**: only example 0 has a gradient, yet every example gets a
#   nonzero dx, because every input moved the mean and the variance that
#   example 0 was normalized with.
# - **equal to x_hat**: a pure stretch; dx is nearly zero (only the ε
#   leftover), and it all goes to dγ.
# - **random**: the general case; the orange bars always sum to zero.

# %% tags=["nbval-ignore-output"]
explore.backward_explorer()

# %% [markdown]
# The default view (random dout, batch of 8), then the two special patterns,
# checked:

# %%
fig, text = explore.backward_view(pattern="random", batch_size=8)
print(text)
ex = explore.backward_example("random", 8)
_ = assert_below("|sum of dx| (random dout)", abs(ex.dx.sum()), 1e-12)

# %%
flat = explore.backward_example("all ones", 8)
assert_below("largest |dx| for dout = all ones", np.abs(flat.dx).max(), 1e-12)
assert_close("dbeta for dout = all ones equals N", flat.dbeta, 8.0, 1e-12)
one_hot = explore.backward_example("one-hot", 8)
assert_true("one-hot dout still moves every example's input", np.all(np.abs(one_hot.dx) > 1e-3),
            f"smallest |dx| {np.abs(one_hot.dx).min():.3f}")
stretch = explore.backward_example("equal to x_hat", 8)
assert_true("dout = x_hat gives a nearly zero dx", np.abs(stretch.dx).max() < 0.01 * np.abs(ex.dx).max(),
            f"largest |dx| {np.abs(stretch.dx).max():.4f} vs {np.abs(ex.dx).max():.3f} for random dout")

# %% [markdown]
# ## Key takeaways
#
# - Batch norm's graph has x reaching the output directly and through the
#   batch mean, and the centred values used both for x̂ and for the variance:
#   the gradient sums over those routes.
# - The staged backward pass applies one chain-rule step per node; the compact
#   formula $dx = \frac{s}{m}(m g - \sum g - \hat{x}\sum g\hat{x})$ with $g =
#   \gamma\,\text{dout}$ gives the same numbers, faster.
# - Both agree with numerical gradients (relative error far below 1e-7 in
#   float64) and with TensorFlow's automatic gradients of the Keras layer
#   (within float32 round-off).
# - dx sums to zero over the batch and is orthogonal to x̂ (up to a term of
#   relative size ε/(σ²+ε)): shifts and stretches of a layer's inputs are
#   absorbed by batch norm; only β and γ learn from them.
#
# ## Exercises
#
# **1. The backward pass.** Write `bn_backward(dout, x, gamma, eps)` returning
# `(dx, dgamma, dbeta)` for a training-mode batch norm over x of shape (N, D)
# (recompute what you need from x). Staged or compact, your choice.

# %%
def bn_backward(dout, x, gamma, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_batchnorm_backward(bn_backward)

# %% [markdown]
# **2. Backward in inference mode.** With `training=False` the layer
# normalizes with the moving statistics, which are constants. Write
# `bn_inference_backward(dout, gamma, moving_variance, eps)` returning dx.
# (Compare it with the training-mode dx: which routes of the graph are gone?)

# %%
def bn_inference_backward(dout, gamma, moving_variance, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_inference_backward(bn_inference_backward)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015,
#   [arXiv:1502.03167](https://arxiv.org/abs/1502.03167), §3 (the gradients
#   through the batch statistics).
# - Stanford CS231n, *Convolutional Neural Networks for Visual Recognition*,
#   assignment 2 (batch normalization: the graph-based and the simplified
#   backward pass), [cs231n.github.io](https://cs231n.github.io/).
# - A. G. Baydin, B. A. Pearlmutter, A. A. Radul and J. M. Siskind,
#   *Automatic Differentiation in Machine Learning: a Survey*, JMLR 18(153), 2018.
# - TensorFlow documentation, [Introduction to gradients and automatic
#   differentiation](https://www.tensorflow.org/guide/autodiff) (`tf.GradientTape`).
