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
#   TensorFlow's automatic differentiation of the Keras layer (float32), and
#   use that check to find the classic bugs of a hand-written backward pass;
# - explain two properties of dx: it sums to zero over the batch, and it is
#   (almost) orthogonal to x̂, and what an upstream gradient that is constant
#   across the batch does.

# %%
import numpy as np

from bnlib import batchnorm, gradcheck
from bnlib.course import checks, plots, timing, widgets
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
# value back over the batch divides by N, the batch size (the paper writes
# $m$; this course keeps $m$ for the momentum of the moving statistics).

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
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)                      # out = (gamma * x_hat) + beta
    dgamma = (dout * x_hat).sum(axis=0)           # gamma * x_hat
    dx_hat = dout * gamma
    d_inv_std = (dx_hat * centred).sum(axis=0)    # x_hat = centred * inv_std
    d_centred = dx_hat * inv_std                  #   (first use of centred)
    d_std = -d_inv_std / std ** 2                 # inv_std = 1 / std
    d_var = d_std / (2.0 * std)                   # std = sqrt(var + eps)
    d_sq = np.ones_like(sq) * d_var / N           # var = mean(sq)
    d_centred += 2.0 * centred * d_sq             # sq = centred ** 2  (second use)
    d_mu = -d_centred.sum(axis=0)                 # centred = x - mu
    dx = d_centred + d_mu / N                     # mu = mean(x), plus the direct route
    return dx, dgamma, dbeta


# %% [markdown]
# ## The compact formula
#
# The staged pass is easy to get right but does a lot of separate array
# operations. Collapsing the chain on paper gives one expression. Write
# $s = 1/\sqrt{\sigma^2+\varepsilon}$ (`inv_std`), $g_i = \gamma\,
# \text{dout}_i$ (the gradient at x̂) and $N$ for the batch size. Two
# derivatives do the work: $\partial\mu/\partial x_i = 1/N$, and
# $\partial\sigma^2/\partial x_i = 2(x_i-\mu)/N$ (the part through μ drops
# out because the centred values sum to zero), hence $\partial s/\partial x_i =
# -s^3 (x_i-\mu)/N$. The product rule on $\hat{x}_j = (x_j - \mu)\,s$ then gives
#
# $$\frac{\partial \hat{x}_j}{\partial x_i} = \frac{s}{N}\left(N\,\delta_{ij} - 1 - \hat{x}_i\hat{x}_j\right).$$
#
# Summing $g_j\,\partial\hat{x}_j/\partial x_i$ over $j$:
#
# $$dx_i = \frac{s}{N}\Big(N\,g_i \;-\; \sum_j g_j \;-\; \hat{x}_i \sum_j g_j\,\hat{x}_j\Big),
# \qquad d\gamma = \sum_i \text{dout}_i\,\hat{x}_i, \qquad d\beta = \sum_i \text{dout}_i .$$
#
# The three terms read well: the direct route ($N g_i$), the route through
# the mean (subtract the average gradient), and the route through the
# variance (subtract the part of the gradient along x̂). Note
# $\sum_j g_j \hat{x}_j = \gamma\,d\gamma$, so the formula reuses the
# parameter gradients.

# %%
def backward_compact(dout, stages):
    x_hat, inv_std, gamma = stages["x_hat"], stages["inv_std"], stages["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
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
assert_close("forward: stages vs bnlib", out, ref_out, 1e-14)
for name, a, b, c in zip(("dx", "dgamma", "dbeta"), staged, compact, ref):
    assert_close(f"{name}: staged vs bnlib", a, c, 1e-14)
    assert_close(f"{name}: compact vs bnlib", b, c, 1e-14)

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
# ## Debugging a backward pass: two bugs from the source notes
#
# The blog post among this course's source notes gives a forward and a
# backward pass in the CS231n style: the forward returns its output and a
# `cache` tuple, the backward unpacks the tuple. As written, the pair cannot
# work, for two reasons that are worth knowing because they are the commonest
# bugs in hand-written layers:
#
# 1. the forward stores seven values in the cache and the backward unpacks
#    six, in another order, so the backward stops with "too many values to
#    unpack";
# 2. the backward recomputes the inverse standard deviation with a hard-coded
#    1e-8 where the forward used its argument ε (1e-5 there).
#
# Here are both bugs in a minimal pair of our own (not the blog's code).
# The forward caches six values, the backward expects five:

# %%
def forward_tuple(x, gamma, beta, eps):
    mean, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mean) / np.sqrt(var + eps)
    cache = (x, eps, gamma, x_hat, mean, var)       # six values
    return gamma * x_hat + beta, cache


def backward_five(dout, cache):
    x, x_hat, mean, var, gamma = cache              # five names, in another order
    return x_hat                                    # (never reached)


x_dbg = np.random.default_rng(1).standard_normal((8, 3))
x_dbg = (x_dbg - x_dbg.mean(axis=0)) / x_dbg.std(axis=0) * [1.0, 0.02, 5.0] + [0.0, 3.0, -2.0]
g_dbg, b_dbg = np.array([1.5, 0.8, 1.2]), np.array([0.1, -0.3, 0.5])
dout_dbg = rng.normal(size=(8, 3))
_, cache_dbg = forward_tuple(x_dbg, g_dbg, b_dbg, 1e-3)
try:
    backward_five(dout_dbg, cache_dbg)
except ValueError as err:   # Python's wording after the comma differs between versions
    print(f"{type(err).__name__}: {str(err).split(' (')[0]}: the backward unpacks 5 values, "
          f"the cache holds {len(cache_dbg)}")

# %% [markdown]
# Fixing the count is not enough: if the two lists had the same length but
# another order, the unpacking would silently put `eps` where `x_hat` should
# be, and NumPy's broadcasting might even let the wrong arrays through. The
# fix is to unpack in exactly the order the forward packed. With that fixed,
# the second bug remains: this backward recomputes $1/\sqrt{\sigma^2 + 10^{-8}}$
# instead of using the forward's ε (it follows the chain rule through the
# variance and the mean, like the staged pass above, written compactly):

# %%
def backward_hard_coded_eps(dout, cache):
    x, eps, gamma, x_hat, mean, var = cache         # the forward's order, all six
    N = dout.shape[0]
    centred = x - mean
    inv_std = 1.0 / np.sqrt(var + 1e-8)             # the bug: not the forward's eps
    dx_hat = dout * gamma
    d_var = (dx_hat * centred).sum(axis=0) * -0.5 * inv_std ** 3
    d_mean = -(dx_hat * inv_std).sum(axis=0)        # (the route through var adds 0 here)
    dx = dx_hat * inv_std + d_var * 2.0 * centred / N + d_mean / N
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


# %% [markdown]
# Run it through the same numerical gradient check as above, feature by
# feature, on a batch whose three features have spreads 1, 0.02 and 5, with ε
# = 1e-3 (Keras's default, used throughout this course) and with the blog's
# 1e-5:

# %%
def dx_errors(eps):
    """Relative error of the hard-coded-eps dx, per feature, and of a correct dx."""
    _, cache_ = forward_tuple(x_dbg, g_dbg, b_dbg, eps)
    dx_num = gradcheck.numerical_gradient(lambda v: forward_tuple(v, g_dbg, b_dbg, eps)[0],
                                          x_dbg.copy(), dout_dbg)
    dx_bad = backward_hard_coded_eps(dout_dbg, cache_)[0]
    _, stages_ = forward_in_stages(x_dbg, g_dbg, b_dbg, eps)
    dx_good = backward_in_stages(dout_dbg, stages_)[0]
    return [gradcheck.rel_error(dx_bad[:, j], dx_num[:, j]) for j in range(3)], \
        gradcheck.rel_error(dx_good, dx_num)


for eps_ in (1e-3, 1e-5):
    bad, good = dx_errors(eps_)
    print(f"eps = {eps_:g}: hard-coded 1e-8, relative error per feature (spreads 1, 0.02, 5): "
          + ", ".join(f"{e:.1g}" for e in bad))
    assert_true(f"eps = {eps_:g}: the check flags the bug on every feature, worst on the "
                "narrow one", min(bad) > 1e-7 and bad[1] == max(bad) and bad[1] > 1e-2)
    _ = assert_below(f"eps = {eps_:g}: the staged backward (the forward's eps)", good, 1e-7)
assert_true("with eps = 1e-5, the feature of spread 5 alone would pass a loose 1e-6 check",
            bad[2] < 1e-6)

# %% [markdown]
# The check catches the bug, and the feature of spread 0.02 is what makes it
# obvious. The hard-coded value and the real ε change $\sqrt{\sigma^2 + \varepsilon}$
# by a relative amount of about $\varepsilon / (2\sigma^2)$: tiny for a wide
# feature, of order one for a variance of 4e-4. With the blog's ε = 1e-5, the
# feature of spread 5 shows a relative error of only 3e-7, which a check with
# a loose tolerance (1e-6, say) on well-scaled inputs would let through; the
# narrow feature shows 0.02 (with ε = 1e-3: 0.7; an error of 1, the largest
# `rel_error` can give, would mean an entry of the wrong sign). **Test
# gradients on features of very different scales, including a narrow one, and
# with a non-default ε.**
#
# bnlib's cache rules both bugs out by construction. It is a named tuple whose
# fields are declared once, in `BatchNormCache`, so the forward and the backward
# share one list of names (`cache.inv_std`) instead of two hand-written tuples
# that must agree in length and order. And it stores `inv_std` itself,
# computed once in the forward pass, so the backward never sees ε and cannot
# use a different one (the staged pass above does the same with its `stages`):

# %%
print("bnlib's cache fields:", batchnorm.BatchNormCache._fields)
assert_true("the backward reads inv_std from the forward, and no eps",
            "inv_std" in batchnorm.BatchNormCache._fields
            and "eps" not in batchnorm.BatchNormCache._fields)
_, cache_b = batchnorm.batchnorm_forward(x_dbg, g_dbg, b_dbg, np.zeros(3), np.ones(3),
                                         training=True, eps=1e-5)[:2]
_ = assert_close("bnlib's cached inv_std = 1 / sqrt(var + the forward's eps)",
                 np.ravel(cache_b.inv_std), 1 / np.sqrt(x_dbg.var(axis=0) + 1e-5), 1e-13)

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
assert_below("largest |sum of dx over the batch|", np.abs(dx.sum(axis=0)).max(), 1e-14)
along_x_hat = (dx * stages["x_hat"]).sum(axis=0)
predicted = gamma * stages["inv_std"] * compact[1] * eps / (var + eps)
assert_close("sum of dx * x_hat vs gamma * s * dgamma * eps / (var + eps)", along_x_hat,
             predicted, 1e-14)
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
_ = assert_below("largest |cos(dx, x_hat)| with eps = 1e-12", cos_tiny.max(), 2e-11)

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
# batch of 256 examples with 512 features (the times depend on the machine,
# so this cell's output is not compared when the notebook is tested):

# %% tags=["nbval-ignore-output"]
big_x = rng.normal(size=(256, 512))
big_dout = rng.normal(size=(256, 512))
_, big = forward_in_stages(big_x, np.ones(512), np.zeros(512), 1e-3)
t = timing.best_times({"staged": lambda: backward_in_stages(big_dout, big),
                       "compact": lambda: backward_compact(big_dout, big)}, 20)
t_staged, t_compact = t["staged"], t["compact"]
print(f"staged {t_staged * 1e3:.2f} ms, compact {t_compact * 1e3:.2f} ms per backward pass: "
      f"the compact one is {t_staged / t_compact:.1f}x faster here")

# %% [markdown]
# The ratio differs between machines and even between runs on one machine
# (from under 2x to over 7x where this course was tested: the staged pass
# allocates many temporary arrays, and how much that costs depends on the
# memory allocator's state), but its direction does not. Checked with a
# margin:

# %%
assert_true("the compact backward is more than 1.25x faster than the staged one",
            t_staged > 1.25 * t_compact)

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
# - **one-hot**: only example 0 has a gradient, yet (in a batch of 3 or more)
#   every example gets a nonzero dx, because every input moved the mean and
#   the variance that example 0 was normalized with.
# - **equal to x_hat**: a pure stretch; dx is nearly zero (only the ε
#   leftover), and it all goes to dγ.
# - **random**: the general case; the orange bars always sum to zero.
# - **batch size 2**: dx is almost zero whatever the pattern (explained below).

# %% tags=["nbval-ignore-output"]
explore.backward_explorer()

# %% [markdown]
# The default view (random dout, batch of 8), then the special patterns,
# checked:

# %%
print(widgets.readout(explore.BackwardScene, pattern="random", batch_size=8))
ex = explore.backward_example("random", 8)
_ = assert_below("|sum of dx| (random dout)", abs(ex.dx.sum()), 1e-14)

# %%
flat = explore.backward_example("all ones", 8)
_ = assert_below("largest |dx| for dout = all ones", np.abs(flat.dx).max(), 1e-14)
_ = assert_close("dbeta for dout = all ones equals N", flat.dbeta, 8.0, 1e-14)
one_hot = explore.backward_example("one-hot", 8)
assert_true("one-hot dout still moves every example's input", np.all(np.abs(one_hot.dx) > 1e-3),
            f"smallest |dx| {np.abs(one_hot.dx).min():.3f}")
stretch = explore.backward_example("equal to x_hat", 8)
assert_true("dout = x_hat gives a nearly zero dx", np.abs(stretch.dx).max() < 0.01 * np.abs(ex.dx).max(),
            f"largest |dx| {np.abs(stretch.dx).max():.4f} vs {np.abs(ex.dx).max():.3f} for random dout")

# %% [markdown]
# **A batch of two.** Set the batch size to 2 and every pattern gives a dx of
# almost nothing. With two examples, the centred inputs are $\pm d$ and
# $\hat{x} = \pm\sqrt{\sigma^2/(\sigma^2+\varepsilon)}$, nearly ±1, whatever the
# inputs. Batch norm's dx removes from $g = \gamma\,\text{dout}$ its part along
# "all ones" and its part along x̂, and with two examples these two
# directions span every possible $g$: nothing is left but the ε leftover.
# Written out, with $c = \sum_i \text{dout}_i\hat{x}_i / \sum_i \hat{x}_i^2$ (the
# part of dout along x̂), the compact formula reduces to
#
# $$dx = \gamma\, s\, \frac{\varepsilon}{\sigma^2 + \varepsilon}\, c\, \hat{x}.$$
#
# Its size is of order ε/σ² (here with ε = 1e-3). The two outputs are ±γ
# times nearly 1, whatever the inputs, so no change of the inputs can change
# the loss, and the layer below learns nothing from this feature.

# %%
for pattern in explore.PATTERNS:
    two = explore.backward_example(pattern, 2)
    var2, x_hat2 = two.x.var(), two.x_hat
    c = float((two.dout * x_hat2).sum() / (x_hat2 ** 2).sum())
    predicted = 1.5 / np.sqrt(var2 + 1e-3) * 1e-3 / (var2 + 1e-3) * c * x_hat2
    _ = assert_close(f"batch of 2, dout = {pattern}: dx vs the closed form", two.dx, predicted,
                     1e-14)
    _ = assert_below(f"batch of 2, dout = {pattern}: largest |dx|", np.abs(two.dx).max(), 0.01,
                     show=".3f")

# %% [markdown]
# ## What the source notes get wrong
#
# - **The blog's backward pass cannot run.** Its forward stores seven values
#   in the cache and its backward unpacks six, in another order: Python stops
#   with "too many values to unpack" (reproduced in a minimal pair of our own
#   in the debugging section above).
# - **Its backward hard-codes ε = 1e-8** where its forward uses ε = 1e-5.
#   Fixed for the unpacking, such a backward fails the numerical gradient
#   check on every feature, worst on a narrow one (relative errors printed in
#   the debugging section; checked again below). Caching `inv_std` in the
#   forward pass, as bnlib does, makes the mistake impossible.

# %%
bad_keras, good_keras = dx_errors(1e-3)
bad_blog, good_blog = dx_errors(1e-5)
assert_true("a backward with a hard-coded 1e-8 fails the gradient check (eps 1e-3 and 1e-5)",
            min(bad_keras + bad_blog) > 1e-7 and max(good_keras, good_blog) < 1e-7,
            f"worst relative errors {max(bad_keras):.1g} and {max(bad_blog):.1g}")

# %% [markdown]
# ## Key takeaways
#
# - Batch norm's graph has x reaching the output directly and through the
#   batch mean, and the centred values used both for x̂ and for the variance:
#   the gradient sums over those routes.
# - The staged backward pass applies one chain-rule step per node; the compact
#   formula $dx = \frac{s}{N}(N g - \sum g - \hat{x}\sum g\hat{x})$ with $g =
#   \gamma\,\text{dout}$ gives the same numbers, faster (more than 1.25x, asserted).
# - Both agree with numerical gradients (relative error below 1e-7 in
#   float64) and with TensorFlow's automatic gradients of the Keras layer
#   (within float32 round-off).
# - The numerical check catches the classic bugs of a hand-written backward,
#   such as an ε that differs from the forward's, most clearly on a feature
#   with a small spread; caching `inv_std` (and one declared cache) rules them out.
# - dx sums to zero over the batch and is orthogonal to x̂ (up to a term of
#   relative size ε/(σ²+ε)): shifts and stretches of a layer's inputs are
#   absorbed by batch norm; only β and γ learn from them. With a batch of two
#   those two directions are everything, and dx is almost zero.
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
