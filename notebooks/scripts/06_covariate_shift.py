# %% [markdown]
# # 06 · Covariate shift
#
# Batch normalization was introduced as a cure for "internal covariate shift".
# This lesson takes that phrase apart: first the plain, external kind, where the
# data a model meets after training sit somewhere else than the data it learned
# from; then the internal kind, inside a network that is training; and finally
# the later experiments suggesting that batch norm helps for a different reason.
#
# **After this lesson you will be able to**
# - say what covariate shift is, and why it hurts a model that cannot represent the true function;
# - repair a fit under covariate shift by importance weighting with $P_T(x)/P_S(x)$,
#   using known densities or a ratio estimated by a source-vs-target classifier;
# - measure how the input distribution of a deep layer moves during training, with and
#   without batch norm;
# - explain the critical view (Santurkar et al., 2018): batch norm still works when its
#   outputs are shifted on purpose, and it makes the loss surface smoother;
# - measure internal covariate shift through a layer's gradient, the smoothness of a loss
#   along the gradient (effective β-smoothness) and the top curvature of a loss, with
#   Hessian-vector products.

# %%
import numpy as np

from bnlib import data, nn
from bnlib.course import checks, plots, seeds, widgets
from bnlib.lessons.lesson06 import exercises, experiments, explore

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## What covariate shift is
#
# "Covariate" is statistics' word for an input variable: the $x$ of a model
# $y = f(x)$. Covariate shift means the inputs come from a different
# distribution than before, while the rule that links them to the outputs stays
# the same. In symbols, with a **source** $S$ (where the training data come from)
# and a **target** $T$ (where the model is used):
#
# $$P_S(x) \neq P_T(x), \qquad P_S(y \mid x) = P_T(y \mid x).$$
#
# Said another way, the *domain* of the function the model must learn is sampled
# differently. For example, a model predicts how much a bridge cable
# stretches from the air temperature. It is calibrated over one winter and then
# used in summer. Physics did not change between the seasons (the same temperature
# gives the same stretch), yet the model is now asked about temperatures it hardly
# saw. Other familiar cases: a photo classifier trained on pictures from one
# camera and used on another, a medical score fit on one hospital's patients and
# used on an older population.
#
# Here is a one-dimensional version we can look at completely. The true rule is
# $E[y \mid x] = \sin(2x) + x/2$ for both samples; the source inputs are drawn
# around 0 and the target inputs around 1.5.

# %%
d = data.covariate_shift(shift=1.5, n_source=400, n_target=400, noise=0.2, seed=0)
print(f"source x: mean {d.x_source.mean():.2f}, std {d.x_source.std():.2f}")
print(f"target x: mean {d.x_target.mean():.2f}, std {d.x_target.std():.2f}")
same_rule = (d.y_target - data.true_function(d.x_target)).std()
print(f"target y around the shared rule: std {same_rule:.3f} (the noise level 0.2)")
assert abs(d.x_target.mean() - d.x_source.mean()) > 1.2 and abs(same_rule - 0.2) < 0.03

# %% [markdown]
# ## A misspecified model is good at home and bad abroad
#
# If a model could represent the true rule exactly, a shift of the inputs would
# matter little: it would learn the rule wherever it has data and the rule is
# the same elsewhere. Real models are never exactly right. We never learn
# $P(y \mid x)$ itself, only the best member $P(y \mid x, \theta)$ of a family we
# chose, and "best" is measured *on the inputs we trained on*. Where the inputs
# are decides which compromise the model makes.
#
# The simplest misspecified model is a straight line, fit by least squares
# on the source sample. Written out:

# %%
design = np.stack([d.x_source, np.ones_like(d.x_source)], axis=1)   # columns x, 1
line = np.linalg.lstsq(design, d.y_source, rcond=None)[0]            # (slope, intercept)
checks.assert_close("line vs explore.fit_line", line,
                    explore.fit_line(d.x_source, d.y_source), 1e-10)
source_mse = explore.mse(line, d.x_source, d.y_source)
target_mse = explore.mse(line, d.x_target, d.y_target)
print(f"straight line: slope {line[0]:.3f}, intercept {line[1]:.3f}")
print(f"mean squared error on the source {source_mse:.3f}, on the target {target_mse:.3f} "
      f"({target_mse / source_mse:.1f} times larger)")
assert source_mse < 0.3 and target_mse > 7 * source_mse

# %% [markdown]
# The line is a fair summary of the curve where the source data live (an error
# of about 0.27, with 0.04 of it pure noise) and poor where the target data
# live: its error there is about eight times larger. Nothing about the rule
# changed; only *where we ask*.
#
# Compare a model that can represent the rule, with features $\sin 2x$, $x$
# and 1. Fit on the same source data, it carries over to the target:

# %%
def rich_features(x):
    return np.stack([np.sin(2 * x), x, np.ones_like(x)], axis=1)


coef = np.linalg.lstsq(rich_features(d.x_source), d.y_source, rcond=None)[0]
rich_target_mse = np.mean((rich_features(d.x_target) @ coef - d.y_target) ** 2)
print(f"well-specified model: target mean squared error {rich_target_mse:.3f}")
assert rich_target_mse < 0.05   # the noise variance is 0.2**2 = 0.04

# %% [markdown]
# ## Importance weighting: training for the target with source data
#
# What we want is a small error on the *target*, an average over $P_T(x)$. We
# only have labelled source data, an average over $P_S(x)$. The two are linked by
# a one-line identity: for any loss $\ell$,
#
# $$E_{x \sim T}\big[\ell(x)\big] = \int \ell(x)\, P_T(x)\, dx
#   = \int \ell(x)\, \frac{P_T(x)}{P_S(x)}\, P_S(x)\, dx
#   = E_{x \sim S}\big[w(x)\, \ell(x)\big], \qquad w(x) = \frac{P_T(x)}{P_S(x)}.$$
#
# So weighting each source example's loss by $w(x)$ turns the source average into
# an (unbiased) estimate of the target average. Source points that look like
# target points count more; points the target never produces count almost
# nothing. This is **importance weighting** (the same trick as importance
# sampling in Monte Carlo). It needs $P_S(x) > 0$ wherever $P_T(x) > 0$: no
# amount of weighting can create data where the source has none.
#
# First with the densities known (here we generated the data, so we know them):

# %%
w = d.target_pdf(d.x_source) / d.source_pdf(d.x_source)
w_bnlib = explore.importance_weights(d.x_source, d.source_pdf, d.target_pdf)
checks.assert_close("weights vs explore.importance_weights", w, w_bnlib, 1e-12)
print(f"mean weight {w.mean():.2f} (its expectation under the source is exactly 1)")
estimate = np.mean(w * (explore.predict_line(line, d.x_source) - d.y_source) ** 2)
print(f"weighted source error of the plain line {estimate:.2f} "
      f"vs its true target error {target_mse:.2f}")
assert abs(w.mean() - 1) < 0.3 and abs(estimate - target_mse) < 0.3 * target_mse

# %% [markdown]
# The weighted source error already predicts the target error of the plain
# line reasonably well. Now minimize that weighted error: a weighted least-squares
# fit, $\min_\theta \sum_i w_i\,(\theta_0 x_i + \theta_1 - y_i)^2$.

# %%
weighted_line = explore.fit_line(d.x_source, d.y_source, weights=w)
weighted_target_mse = explore.mse(weighted_line, d.x_target, d.y_target)
best_target_mse = explore.mse(explore.fit_line(d.x_target, d.y_target),
                                    d.x_target, d.y_target)
print(f"target error: plain {target_mse:.3f}, weighted {weighted_target_mse:.3f}, "
      f"best possible line (fit on labelled target data) {best_target_mse:.3f}")
weighted_source_mse = explore.mse(weighted_line, d.x_source, d.y_source)
print(f"source error: plain {source_mse:.3f}, weighted {weighted_source_mse:.3f}")
assert weighted_target_mse < target_mse / 10 and weighted_target_mse < 1.1 * best_target_mse
assert weighted_source_mse > 10 * source_mse

# %% [markdown]
# The weighted line is almost as good on the target as a line fit on labelled
# target data, which we did not use. The price: its *source* error went up more
# than tenfold, because it now spends its single slope on the region the target
# cares about. A line cannot be good in both places; weighting chooses the place.
#
# ### When the densities are unknown: ask a classifier
#
# In practice nobody hands us $P_S$ and $P_T$. We do usually have unlabelled
# target inputs, though, and a neat trick turns them into weights. Pool the
# source inputs (label 0) and target inputs (label 1) and train a classifier to
# tell them apart. By Bayes' rule its probability $p(x) = P(\text{target} \mid x)$ satisfies
#
# $$\frac{p(x)}{1 - p(x)} = \frac{n_T\, P_T(x)}{n_S\, P_S(x)}
#   \quad\Longrightarrow\quad w(x) = \frac{p(x)}{1-p(x)} \cdot \frac{n_S}{n_T}.$$
#
# The odds, corrected for the sizes of the two pools, are the density ratio.
# `explore.fit_domain_classifier` is a logistic regression on the
# features $1, x, x^2$ (the log-ratio of two Gaussians is quadratic, so this
# family fits the task), fitted with Newton's method in a few lines of NumPy.

# %%
classifier = explore.fit_domain_classifier(d.x_source, d.x_target)
for x0 in (0.0, 1.0, 2.0):
    print(f"P(target | x={x0:.0f}) = {classifier(np.array([x0]))[0]:.3f}")
w_est = explore.odds_weights(classifier(d.x_source), len(d.x_source), len(d.x_target))
corr = np.corrcoef(w, w_est)[0, 1]
est_line = explore.fit_line(d.x_source, d.y_source, weights=w_est)
est_target_mse = explore.mse(est_line, d.x_target, d.y_target)
print(f"correlation of estimated and true weights {corr:.3f}")
print(f"target error with estimated weights {est_target_mse:.3f} (plain {target_mse:.3f})")
assert corr > 0.95 and est_target_mse < target_mse / 10

# %% [markdown]
# ### The price of weighting
#
# Weights concentrate the fit on a few source points. A handy gauge is the
# *effective sample size* $(\sum w)^2 / \sum w^2$: how many equally weighted
# examples the weighted sample is worth.

# %%
ess = explore.effective_sample_size(w)
print(f"400 source examples are worth about {ess:.0f} after weighting")
assert 10 < ess < 20

# %% [markdown]
# The fit above leaned on roughly 15 points. The further the target moves, the
# fewer source points resemble it, and the noisier the weighted fit becomes.
#
# ## Explorer: move the target
#
# Drag the shift. Watch three things: the plain line's target error, the two
# weighted lines, and the effective sample size in the readout.

# %% tags=["nbval-ignore-output"]
explore.shift_explorer()

# %% [markdown]
# The explorer's readout at its starting shift of 1.5, and the numbers at the
# two ends of the slider:

# %%
print(widgets.readout(explore.ShiftScene, shift=1.5))
for s in (0.0, 3.0):
    r = explore.shift_experiment(s)
    e = r["errors"]
    print(f"shift {s:.1f}: target MSE plain {e['plain'][1]:.3f}, weighted {e['known'][1]:.3f}, "
          f"best line {e['best'][1]:.3f}, effective sample size {r['ess']['known']:.1f}")
e0, e3 = explore.shift_experiment(0.0), explore.shift_experiment(3.0)
assert e0["errors"]["known"][1] < e0["errors"]["plain"][1] < 0.2 and e0["ess"]["known"] > 300
assert e0["errors"]["known"][1] < 1.05 * e0["errors"]["best"][1]
assert e3["ess"]["known"] < 2 and e3["errors"]["known"][1] > 10 * e3["errors"]["best"][1]

# %% [markdown]
# One sample can be lucky. The same fits on five samples (seeds 0 to 4), at the
# two ends of the slider and in the middle; errors are target mean squared errors,
# as ratios:

# %%
rule = {s: explore.weighting_over_seeds(shift=s) for s in (0.0, 1.5, 3.0)}
for s, r in rule.items():
    print(f"shift {s:.1f}: weighted / plain {seeds.spread(r['vs_plain'])}\n"
          f"           weighted / best line {seeds.spread(r['vs_best'])}\n"
          f"           effective sample size {seeds.spread(r['ess'], '.1f')}")
r0, r15, r3 = rule[0.0], rule[1.5], rule[3.0]
checks.assert_true("shift 1.5, every sample: weighting (true or estimated) cuts the error tenfold",
                   np.all(np.maximum(r15["vs_plain"], r15["vs_plain_estimated"]) < 0.1))
checks.assert_true("shift 1.5, every sample: within 30% of the best line",
                   np.all(r15["vs_best"] < 1.3))
checks.assert_true("shift 0, every sample: weighting does not hurt", np.all(r0["vs_plain"] < 1))
checks.assert_true("shift 3, every sample: effective sample size under 10, error over 10x the best",
                   np.all(r3["ess"] < 10) and np.all(r3["vs_best"] > 10))

# %% [markdown]
# - With no shift, the weights stay close to one (effective sample size about
#   350 of 400). The target is a little narrower than the source, so weighting
#   still trims the error, down to the best line's.
# - At moderate shifts, weighting turns an error of about 2 into about 0.13 on
#   our sample, and cuts it more than tenfold on every sample, to within 25% of
#   the best line's.
# - At a shift of 3 the target sits where the source has almost no data: the
#   weighted fit rests on a handful of points (an effective sample size under 10,
#   1.3 to 2.6 on these samples) and is over ten times worse than the best line.
#   Whether it even beats the plain line then depends on the sample. Importance
#   weighting corrects *which* data count; it cannot invent data that are not there.

# %% [markdown]
# ## Inside a network: internal covariate shift
#
# Within one training set, plain covariate shift is rarely a problem. If the
# examples are shuffled, every minibatch is a fair sample of the same data, so
# the first layer sees inputs whose distribution barely changes from step to
# step.
#
# Deeper layers are in a different position. The "data" of hidden layer $l$ are
# the outputs of layers $1, \dots, l-1$, and those layers change their weights at
# every step. So layer $l$ learns a mapping for inputs drawn from a
# distribution that moves under it while it learns: covariate shift, produced
# inside the network by training itself. Ioffe and Szegedy (2015) named it
# **internal covariate shift** and proposed batch norm to reduce it. Their
# argument: a layer whose inputs keep drifting must keep re-adapting, which
# calls for small learning rates and careful initialization.
#
# Picture an assembly line where every station re-tunes its machine at the
# same moment, each assuming the parts arriving from upstream will look like
# yesterday's. Each station's change is small, but a station near the end
# receives parts altered by *all* the changes before it.
#
# ### Small changes add up with depth
#
# We can measure that directly. Take an 8-layer tanh network, nudge every weight
# matrix by noise of 10% of its own spread (as if all layers took one update at
# once), and measure how far each hidden layer's input distribution moves: the
# mean shift of its 15th, 50th and 85th percentiles, in units of the layer's
# own width (85th minus 15th percentile) on 500 digits. The seed sets both the
# network and the nudge; we try five seeds (`experiments.SEEDS`), drawn as
# thin lines, with their median thick.

# %%
fig, text = explore.compounding_figure()
print(text)
plain = experiments.compounding_shifts("none")     # shape (seeds, layers)
normed = experiments.compounding_shifts("batch")
growth, damping = plain[:, -1] / plain[:, 0], plain[:, -1] / normed[:, -1]
checks.assert_true("every seed, no batch norm: layer 8 moves over twice as far as layer 1",
                   np.all(growth > 2), f"{seeds.spread(growth, '.1f')} times")
checks.assert_true("batch norm's layer 8 moves under a sixth as far on every seed, about a "
                   "tenth at the median", np.all(damping > 6) and np.median(damping) > 8,
                   f"{seeds.spread(damping, '.0f')} times less")

# %% [markdown]
# Without batch norm the shift grows as it travels up: layer 8 moves about three
# times as far as layer 1 (2.5 to 3.6 times, depending on the seed). With batch
# norm before each activation the shift stays small at every depth: at layer 8
# it is about ten times smaller than without (10 to 15 times on these seeds).
#
# The reason is simple. In training mode, batch norm gives each unit the mean
# $\beta$ and the standard deviation $\gamma$ (up to $\varepsilon$), *whatever*
# the layers below produce. Watch what happens to the second hidden layer's
# input when we scale the first layer's weights by 10 and add noise to the
# second's:

# %%
x_digits = data.digits().x_train[:500]
model = nn.MLP((64, 50, 50, 10), norm="batch", seed=0)
model.forward(x_digits, training=True)
z = model.pre_activations[1]
print(f"before: largest |unit mean| {np.abs(z.mean(axis=0)).max():.3f}, "
      f"unit stds {z.std(axis=0).min():.3f} to {z.std(axis=0).max():.3f}")
model.weights[0] *= 10.0
model.weights[1] += 0.5 * rng.standard_normal(model.weights[1].shape)
model.forward(x_digits, training=True)
z = model.pre_activations[1]
print(f"after:  largest |unit mean| {np.abs(z.mean(axis=0)).max():.3f}, "
      f"unit stds {z.std(axis=0).min():.3f} to {z.std(axis=0).max():.3f}")
assert np.abs(z.mean(axis=0)).max() < 1e-9 and np.all(np.abs(z.std(axis=0) - 1) < 0.01)

# %% [markdown]
# The first two moments of every unit's input are pinned; only the *shape* of
# the distribution can still change, and the values $\gamma, \beta$ move only as
# fast as gradient descent moves them. In that sense batch norm makes each layer
# more independent of the layers below it: they can change their weights
# without moving the ground under it. (What stays, the small shifts in the plot,
# is the change of shape.)
#
# ### Measured during training
#
# Now a real run, close to Ioffe and Szegedy's Figure 1: three hidden layers of
# 100 sigmoid units on the digits (64 inputs instead of MNIST's 784; 600 steps
# of batch 60 instead of 50,000), SGD with learning rate 1, with and without
# batch norm before each sigmoid. Every 25 steps we record the 15th, 50th and 85th
# percentiles of the input of each sigmoid in the last hidden layer, over 250
# training images. The third network is explained in the next section.
# The explorer shows the networks trained from seed 0 and lets you pick which of
# the 100 units to watch.

# %% tags=["nbval-ignore-output"]
explore.layer_input_explorer()

# %% [markdown]
# Unit 0 of seed 0, and the movement of the whole layer (the mean over its 100
# units of how far the three percentiles moved, in the sigmoid's input units):

# %%
text = widgets.readout(explore.LayerInputScene, unit=0)
print(text)
runs = {net: experiments.shift_run(net) for net in explore.NETS}
assert all(f"{r['movement']['total']:.2f} in all" in text for r in runs.values())
assert runs["batch"]["movement"]["total"] < runs["none"]["movement"]["total"]

# %% [markdown]
# One seed is an anecdote. Here is the whole layer's movement, measured two
# ways, and the test accuracy, for the same three networks trained from each of
# the five seeds. The **drift** is the layer's distance from where it started
# (the mean over units and percentiles of |Q(step) - Q(0)|); the **jitter** is
# its distance from the previous record, 25 steps before, averaged over the run.
# The text lists both for every seed:

# %%
fig, text = explore.drift_figure()
print(text)
drift = experiments.drift()    # net -> per-seed arrays
plain, normed = drift["none"], drift["batch"]
checks.assert_true("every seed: batch norm's drift under 40% of the plain net's",
                   np.all(normed["total"] < 0.4 * plain["total"]),
                   f"ratio {seeds.spread(normed['total'] / plain['total'])}")
checks.assert_true("every seed: batch norm's movement per record under a third of the plain net's",
                   np.all(normed["per_step"] < plain["per_step"] / 3),
                   f"ratio {seeds.spread(normed['per_step'] / plain['per_step'])}")

# %% [markdown]
# Without batch norm, the inputs of the last layer's sigmoids drift by 1.5 to 2
# over training, and most of that move happens in the first 50 steps, away from
# the centre of the sigmoid, where it is steepest:

# %%
total = plain["total"]
checks.assert_true("every seed, no batch norm: drift between 1.4 and 2.2",
                   np.all((total > 1.4) & (total < 2.2)), seeds.spread(total))
checks.assert_true("every seed: at step 50, already 90% as far from the start as at the end",
                   np.all(plain["early_share"] > 0.9), seeds.spread(plain["early_share"]))
checks.assert_true("every seed: at step 50, over 90% of the units have their median beyond +-1",
                   np.all(plain["outside_one"] > 0.9), seeds.spread(plain["outside_one"]))

# %% [markdown]
# (A share above 1: by step 50 the layer had gone further than where it ends.)
# After that the plain layer's percentiles keep moving: over the whole run they
# move three to five times as much per record as the batch-norm layer's (checked
# above). With batch norm, each unit's band stays put, centred on $\beta$ with
# width set by $\gamma$, and the network trains much faster (test accuracy in
# the right panel, checked below). So far, this is the original story: batch
# norm reduces internal covariate shift, and training is faster.
#
# ## The critical view: is the shift what matters?
#
# Santurkar, Tsipras, Ilyas and Madry (2018) put that story to two tests, and
# then proposed another explanation.
#
# **Test 1: noisy batch norm.** If reducing the shift is what helps, then putting a
# large shift *back in*, right after batch norm, should undo the benefit. Our
# version of their experiment: after every batch-norm layer, at every training
# step, each unit's output is multiplied by a random scale (between 1/2 and 2),
# moved by a random offset (between -1 and 1), and jittered per example by noise
# of a random size (standard deviation up to 0.5); all three are redrawn at every
# step (`experiments.NoisyBatchNorm`; nothing is added at test time). The
# sigmoids of that network see a distribution that jumps around all the time;
# the third panel of the explorer and the green lines above are that network.
# Is that more shift than without batch norm? It depends on which of the two
# measures above you ask:

# %%
noisy = drift["noisy"]
jitter, drifted = noisy["per_step"] / plain["per_step"], noisy["total"] / plain["total"]
checks.assert_true("every seed: noisy batch norm jitters over 2.5 times as much as none",
                   np.all(jitter > 2.5), f"{seeds.spread(jitter, '.1f')} times")
checks.assert_true("every seed: yet it drifts less than none, under 0.8 of its drift",
                   np.all(drifted < 0.8), f"ratio {seeds.spread(drifted)}")

# %% [markdown]
# **More jitter, less drift.** From one record to the next, the noisy
# network's layer inputs jump three to four times as far as the plain network's:
# the injected noise, redrawn at every step. But where the layer's inputs sit
# on average moves *less* than without batch norm, about 0.6 of the plain
# network's drift on every seed (the table above: 0.94 against 1.58 on seed 0):
# batch norm underneath still pins each unit's mean and spread, and the noise
# is drawn afresh around that same centre at every step instead of piling up,
# so the distance from the start stays about one jump (0.94 against a jitter of
# 0.91 on seed 0). So the noisy network has far more step-to-step shift and less
# start-to-end shift than the plain one. How well does it train?

# %%
acc = experiments.accuracies()    # the same runs: net -> {"early", "final"}, per seed
for net, a in acc.items():
    print(f"{explore.NETS[net]:>16}, test accuracy: after 300 steps "
          f"{seeds.spread(a['early'])}, after 600 {seeds.spread(a['final'])}")
gap = np.abs(acc["noisy"]["final"] - acc["batch"]["final"])
checks.assert_true("every seed: noisy and plain batch norm end within 0.04", np.all(gap < 0.04),
                   f"gap {seeds.spread(gap)}")
lead = np.minimum(acc["noisy"]["early"], acc["batch"]["early"]) - acc["none"]["early"]
checks.assert_true("every seed: after 300 steps both lead the plain net by over 0.5",
                   np.all(lead > 0.5), f"by {seeds.spread(lead)}")
lead = acc["noisy"]["final"] - acc["none"]["final"]
checks.assert_true("every seed: after 600 steps noisy batch norm still leads the plain net",
                   np.all(lead > 0.05), f"by {seeds.spread(lead)}")

# %% [markdown]
# It trains about as well as the clean batch-norm network (its final accuracy
# within 0.04 of it on every seed) and much faster than the network without
# batch norm. A network whose layer inputs jump around at every step trains
# well: a *steady* input distribution is not what makes batch norm work.
#
# **Test 2: their own measure of internal covariate shift.** Percentiles
# describe a distribution, but what a layer's learning depends on is its
# gradient. Santurkar et al. (their section 2.2) therefore measure the shift
# through the gradient: for layer $i$, let $G$ be the gradient of the loss with
# respect to its weights $W_i$, and $G'$ the same gradient, on the same batch,
# after the layers *before* $i$ have taken their gradient step (layer $i$ and
# the later ones unchanged). If the layers below moving the ground under layer
# $i$ mattered, the update layer $i$ computed would be stale by the time it is
# applied: $G'$ would differ from $G$. They report $\lVert G - G' \rVert$ and
# the cosine of the angle between $G$ and $G'$ (1: the same direction), and
# find that batch norm does **not** reduce them on a VGG network on CIFAR-10 and
# in a deep linear network, and sometimes increases them.
#
# We measured it in the same three trainings, on the 250 recorded images, for
# the weights of every layer from the second on
# (`experiments.gradient_shift`; a noisy layer draws the same noise for $G$ and
# $G'$, so only the update of the layers below differs). Layer 3, whose output
# is the layer watched above, in two phases: the plain network's plateau
# (steps 1 to 299, where its test accuracy sits near chance) and the rest:

# %%
fig, text = explore.gradient_shift_figure()
print(text)
shift = experiments.gradient_shifts()         # net -> layer -> phase -> per-seed arrays
early = {net: shift[net][3]["early"] for net in shift}
late = {net: shift[net][3]["late"] for net in shift}
still = early["none"]["relative"] / early["batch"]["relative"]
checks.assert_true("plateau, every seed: the plain net's gradient changes less, relative to "
                   "its size, than batch norm's; under a tenth at the median",
                   np.all(still < 1) and np.median(still) < 0.1, f"ratio {seeds.spread(still)}")

# %% [markdown]
# On its plateau the plain network's gradient is tiny and hardly changes when
# the layers below update (a cosine near 1): by this measure it has *less*
# internal covariate shift than the batch-norm network, which meanwhile is
# learning fast, as Santurkar et al. found on their networks. But the plain
# network is not learning then. Once it does (from step 300):

# %%
turn = late["none"]["ics"] / late["batch"]["ics"]
checks.assert_true("from step 300, every seed: cos(G, G') above 0.9 with batch norm, noisy "
                   "or not, under 0.7 without",
                   np.all(np.minimum(late["batch"]["cos"], late["noisy"]["cos"]) > 0.9)
                   and np.all(late["none"]["cos"] < 0.7))
checks.assert_true("from step 300, every seed: ||G - G'|| over 4x larger without batch norm",
                   np.all(turn > 4), f"{seeds.spread(turn, '.0f')} times")
stale = late["none"]["relative"] / late["batch"]["relative"]
checks.assert_true("from step 300, every seed: and over 1.5x larger relative to ||G||",
                   np.all(stale > 1.5), f"{seeds.spread(stale, '.1f')} times")

# %% [markdown]
# While both networks learn, the plain network's layer-3 gradient turns a lot
# when the layers below take their step (a cosine of 0.14 to 0.64), and its
# change, as a share of the gradient, is two to three times batch norm's; with
# batch norm the gradient hardly turns (0.97 to 0.99). The ReLU networks of
# the next experiment, which both learn from the first step, say the same
# more strongly:

# %%
relu = experiments.landscape_gradient_shifts()    # net -> per-seed arrays, layer 3
for net, v in relu.items():
    print(f"ReLU, {explore.NETS[net]:>13}, layer 3: cos(G, G') {seeds.spread(v['cos'])}")
checks.assert_true("ReLU, every seed: cos(G, G') above 0.9 with batch norm, under 0.5 without",
                   np.all(relu["batch"]["cos"] > 0.9) and np.all(relu["none"]["cos"] < 0.5))

# %% [markdown]
# So on these small networks their measure does not repeat their finding: when
# both networks learn, batch norm *reduces* the gradient change the layers
# below cause. (The networks differ from theirs: three layers, not a deep VGG.)
# The measure and the percentiles also disagree about the noisy network: its
# layer inputs jitter the most, yet by the gradient measure its shift is as
# small as plain batch norm's. The noisy experiment argues against the
# *distributional* version of the story (a steady input distribution is what
# helps); it does not rule out a gradient version of it.
#
# **Their proposed explanation: a smoother loss surface.** This part is not a
# test of the original story but an alternative to it: batch norm changes the
# *shape of the loss as a function of the weights*. It makes the loss and its
# gradient change more gently, so a gradient step lands where the gradient
# promised, and larger steps are safe. We measure it as they did, in spirit:
# at points along training, take the gradient $g$ on a fixed batch of 250
# images, step to $\theta_k = \theta - k\,\eta\, g$ for $k \in \{0.5, 1, 2, 4\}$, and record
#
# - the **loss range**: the largest minus the smallest loss over those points
#   (including $k=0$);
# - the **gradient change**: the largest $\lVert g_k - g \rVert$, with
#   $g_k = \nabla L(\theta_k)$;
# - the **effective β-smoothness**, Santurkar et al.'s name for the largest
#   gradient change per unit distance moved,
#   $\beta = \max_k \lVert g_k - g \rVert / \lVert \theta_k - \theta \rVert$
#   (with $\lVert \theta_k - \theta \rVert = k\,\eta\,\lVert g \rVert$): a local
#   Lipschitz constant of the gradient along the path. It is measured in the
#   loss's units per squared unit of weight, like a curvature; it is not
#   relative to anything.
#
# The networks are three hidden layers of 100 ReLU units, with learning rate
# $\eta = 0.4$, near the largest at which the plain network still settles here.
# We say a run *settles* if its median minibatch loss over its last 100 steps
# is below 0.1 (a run that trains ends near 0.03). At $\eta = 0.8$ the plain
# network no longer does:

# %%
fig, text = explore.learning_rate_figure(lrs=(0.4, 0.8))
print(text)
verdicts = experiments.learning_rate_verdicts(lrs=(0.4, 0.8))
print(f"learning rate 0.4, final test accuracy: {seeds.spread(verdicts[0.4]['final'])}")
checks.assert_true("learning rate 0.4: the plain ReLU net settles on every seed",
                   verdicts[0.4]["settled"].all())
checks.assert_true("learning rate 0.8: it settles on no seed", not verdicts[0.8]["settled"].any())

# %% [markdown]
# At 0.8 the loss keeps jumping up and down; where a run happens to be after
# 300 steps is a matter of chance. Such a run is *chaotic*: round-off alone
# (another CPU, or a change of the initial weights in their 15th digit) sends
# it somewhere else, and its final accuracy moves by tens of points (the
# course's tests check this). That is why we report a verdict for it, not its
# accuracy.
#
# That matters for the probe: its largest step, $k = 4$, moves the plain
# network by $4 \times 0.4 = 1.6$ learning rates' worth, twice the rate at which
# it no longer settles. Steps that long overshoot, and they alone make the loss
# range over all $k$ about a hundred times larger without batch norm. The fair
# comparison keeps to steps the training takes, $k \le 1$. We probe both
# networks every 10 steps over their first 100 steps:

# %%
fig, text = explore.landscape_figure(lr=0.4, steps=100)
print(text)
smooth = experiments.smoothness(lr=0.4, steps=100)    # net -> per-seed means after step 0
ratio = {key: smooth["none"][key] / smooth["batch"][key] for key in experiments.SMOOTHNESS_KEYS}
for key, name, every, median in (("loss_range_small", "loss range, k <= 1", 5, 10),
                                 ("grad_change_small", "gradient change, k <= 1", 10, 15)):
    checks.assert_true(f"{name}: over {every}x smaller with batch norm on every seed, over "
                       f"{median}x at the median", np.all(ratio[key] > every)
                       and np.median(ratio[key]) > median, f"{seeds.spread(ratio[key], '.0f')} times")
checks.assert_true("all k: loss range over 40x smaller", np.all(ratio["loss_range"] > 40),
                   f"{seeds.spread(ratio['loss_range'], '.0f')} times")

# %% [markdown]
# For steps of at most one learning rate, the loss varies about fifteen times
# less along the gradient with batch norm (8 to 17 times, depending on the
# seed) and the gradient changes about twenty times less (17 to 30 times).
# Over all $k$, with the overshooting $k = 4$ step, the loss range gap grows to
# 64 to 118 times. Be careful with what these numbers show, though:
#
# - **The two gradients are not the same size.** The plain network's gradient
#   is five to nine times larger (dashed lines in the middle panel), so each
#   step moves it five to nine times further; a larger change of its gradient
#   is partly that. The effective β-smoothness divides by the distance moved,
#   and its gap is much smaller, about four times (3.8 to 4.6):

# %%
print(f"gradient norm, no batch norm / batch norm: {seeds.spread(ratio['grad_norm'], '.1f')}")
checks.assert_true("every seed: the plain net's gradient over 3x larger",
                   np.all(ratio["grad_norm"] > 3))
checks.assert_true("effective beta-smoothness: over 2.5x smaller with batch norm on every "
                   "seed, over 3.5x at the median", np.all(ratio["beta"] > 2.5)
                   and np.median(ratio["beta"]) > 3.5, f"{seeds.spread(ratio['beta'], '.1f')} times")

# %% [markdown]
# - **At step 0 the order is reversed.** At initialization the batch-norm
#   network's loss drops steeply along its gradient, so its loss range there is
#   about ten times larger:

# %%
start = {net: r["start"] for net, r in smooth.items()}
print(f"loss range at step 0: batch norm {seeds.spread(start['batch'])}, "
      f"no batch norm {seeds.spread(start['none'])}")
checks.assert_true("every seed: at step 0, batch norm's loss range over 5x the plain net's",
                   np.all(start["batch"] > 5 * start["none"]),
                   f"{seeds.spread(start['batch'] / start['none'], '.0f')} times")

# %% [markdown]
# - **Part of the gap is progress.** The batch-norm network reaches a low loss
#   much sooner, and near a minimum everything varies less.
# - **A flat surface is not always a good one.** With sigmoid units, the plain
#   network starts on a plateau where the gradient is tiny: the loss barely
#   changes along the gradient, a "smooth" surface on which it makes no progress:

# %%
flat = experiments.smoothness(nets=("none",), lr=1.0, steps=100, activation="sigmoid")["none"]
print(f"sigmoid net without batch norm, learning rate 1:\n  loss range "
      f"{seeds.spread(flat['loss_range'])}\n  test accuracy after 100 steps "
      f"{seeds.spread(flat['accuracy'])}")
checks.assert_true("every seed: loss range under 0.2 and accuracy at chance (under 0.2)",
                   np.all(flat["loss_range"] < 0.2) and np.all(flat["accuracy"] < 0.2))

# %% [markdown]
# That is why the smoothness comparison is made where both networks do learn
# (ReLU units, a learning rate near the plain net's limit), as Santurkar et al.
# did with a VGG network on CIFAR-10. The course's tests repeat every comparison
# of this lesson on five other seeds, and the smoothness one also at learning
# rate 0.2: after the first steps, the batch-norm network's loss and gradient
# vary less along the gradient each time, and so does its β.
#
# ### Curvature, and the link to second-order methods
#
# One set of lecture notes calls batch norm *related to second-order
# methods*, which model the curvature of the loss. Batch norm computes no
# curvature (lesson [08](08_noise_batch_size_and_pitfalls.ipynb) shows the
# kinship it does have: scale-invariant weights whose steps adjust themselves,
# as a preconditioner would). But we can measure what it does to the
# curvature. The **top eigenvalue $\lambda_{\max}$ of the Hessian** (the matrix of
# second derivatives of the loss with respect to all 28,000 or so parameters) is
# the curvature along the most curved direction. On a quadratic bowl, gradient
# descent is stable only if $\eta < 2/\lambda_{\max}$
# (lesson [01](01_normalization.ipynb) showed the bowl and its condition
# number); a network is not a bowl, but the bound is a good guide. We never
# form the Hessian: a Hessian-vector product is a difference of two gradients,
# $H v \approx (\nabla L(\theta + h v) - \nabla L(\theta - h v)) / 2h$, and
# power iteration ($v \leftarrow Hv / \lVert Hv \rVert$, twenty times) finds the
# top eigenvalue (`experiments.top_curvature`). The networks are the 3 x 100 ones
# with tanh units (smooth, so the differences are accurate; a ReLU's kinks
# would spoil them), trained at $\eta = 0.4$ for 300 steps, probed every 50:

# %%
fig, text = explore.curvature_figure(lr=0.4)
print(text)
curv = experiments.curvature(lr=0.4)
flatter = curv["none"]["mean"] / curv["batch"]["mean"]
checks.assert_true("every seed: top curvature over 1.5x lower with batch norm",
                   np.all(flatter > 1.5), f"{seeds.spread(flatter, '.1f')} times")
checks.assert_true("no batch norm: at the median over seeds, it climbs past 2/lr",
                   np.median(curv["none"]["max"]) > 2 / 0.4)
checks.assert_true("batch norm: below 2/lr after step 0 on every seed",
                   np.all(curv["batch"]["max"] < 2 / 0.4))

# %% [markdown]
# Without batch norm, the curvature climbs past $2/\eta = 5$ within the first
# hundred steps (at the median over seeds its largest value is 7.7), then falls
# back below it. Above that line a step of $\eta$ overshoots along the most
# curved direction, and the loss there goes up instead of down until training
# reaches flatter ground; Cohen et al. (2021) describe gradient descent as
# running at this "edge of stability". With batch norm the top curvature is
# two to four times lower after the first step and stays below $2/\eta$: the
# same learning rate is a comfortable step. This is the measured content of the
# "second-order" remark: batch norm does not estimate curvature, but it lowers
# the largest one, which is what limits the learning rate of gradient descent.
# (A caution: with batch norm the loss does not change when a layer's weights
# are scaled, so its curvature falls as those weights grow; part of the gap is
# that.)
#
# ## What the evidence supports
#
# - Batch norm helps optimization: faster training, larger usable learning
#   rates, less sensitivity to initialization ([05](05_batchnorm_in_a_network.ipynb)
#   measured these).
# - It does pin each unit's input mean and variance, which is a reduction of
#   internal covariate shift in the narrow sense measured above.
# - But "it works because it reduces internal covariate shift", the original
#   explanation, is now disputed: a network with random shifts deliberately
#   injected after batch norm trains about as well. On our networks the
#   gradient measure of the shift is smaller with batch norm once both learn,
#   where Santurkar et al. found it was not on theirs; that question is open.
# - The smoother loss surface (lower β, lower top curvature) is their proposed
#   explanation, supported by measurements like ours, and not the only one
#   (other work points to its effect on the effective learning rate of
#   scale-invariant weights). Take the name of the paper as history, not as the
#   mechanism.

# %% [markdown]
# ## What the source notes get wrong
#
# - *A model trained on one input distribution performs poorly on another, and
#   after a shift the model must be retrained* (two of the notes). Only a model
#   that cannot represent the rule suffers: the well-specified model above,
#   fit on the source alone, has a target error of 0.041 (the noise level is
#   0.04), against 2.2 for the straight line; and importance weighting repairs
#   the line without a single labelled target example.
# - *Batch norm does not smooth the cost* (one note, as the reason it is not a
#   regularizer). Measured along the gradient, it does: for steps up to one
#   learning rate the loss varies 8 to 17 times less and β is about four times
#   smaller (the smoothness section above).
# - *With batch norm, the weights need not adapt to changing inputs because the
#   data look the same* (one note). The mean and variance of each unit's input
#   are pinned, but the distribution still moves (batch norm's drift is 0.49,
#   not 0), and a network whose inputs jump at every step (noisy batch norm)
#   trains just as well: steadiness of the inputs is not the mechanism.

# %%
checks.assert_below("well-specified model, target error", rich_target_mse, 0.05, show=".3f")
checks.assert_true("straight line, target error over 1.5", target_mse > 1.5, f"{target_mse:.1f}")
checks.assert_true("batch norm's drift not zero, on every seed (above 0.3)",
                   np.all(normed["total"] > 0.3), seeds.spread(normed["total"]))

# %% [markdown]
# ## Key takeaways
#
# - Covariate shift: the inputs' distribution changes ($P_S(x) \neq P_T(x)$) while
#   the rule $P(y \mid x)$ stays. It hurts because a model is only the best
#   member of its family *on the inputs it was trained on*.
# - Importance weighting by $w(x) = P_T(x)/P_S(x)$ makes the source loss an
#   estimate of the target loss; a classifier's odds times $n_S/n_T$ estimate
#   $w$ without knowing either density. It cannot help where the source has no data.
# - Internal covariate shift: a hidden layer's inputs move because the layers
#   below it train; small changes add up with depth. Batch norm pins every
#   unit's input mean to $\beta$ and its standard deviation to $\gamma$, which
#   makes the layers more independent.
# - Shuffled minibatches keep the *first* layer's inputs stable; the problem is
#   a deep one.
# - Two measures of the shift can disagree. Noisy batch norm has more jitter
#   (step to step) and less drift (start to end) than no batch norm; Santurkar et
#   al.'s gradient measure, $\lVert G - G' \rVert$ and $\cos(G, G')$, rates its shift
#   as small as plain batch norm's.
# - The critical view: with random shifts injected after batch norm, a network
#   trains about as well as with plain batch norm. Their proposed explanation is
#   a smoother loss: along the gradient the loss and the gradient change less
#   with batch norm, and so do the effective β-smoothness (gradient change per
#   distance moved) and the top Hessian eigenvalue, which bounds the stable
#   learning rate by $2/\lambda_{\max}$. Compare such numbers at equal step
#   lengths: the plain network's larger gradient moves it further.

# %% [markdown]
# ## Exercises
#
# **1. Weights from a classifier.** Write `my_odds_weights(p_target, n_source, n_target)`
# (bnlib's own version is `explore.odds_weights`: try without peeking)
# that turns a classifier's probabilities $P(\text{target} \mid x)$ (an array) into
# importance weights $P_T(x)/P_S(x)$, for pools of `n_source` source and
# `n_target` target examples.

# %%
def my_odds_weights(p_target, n_source, n_target):
    raise NotImplementedError("replace with your code")


_ = exercises.check_odds_weights(my_odds_weights)

# %% [markdown]
# **2. Weighted least squares.** Write `weighted_line(x, y, w)` returning
# `(slope, intercept)` that minimize $\sum_i w_i (\text{slope}\cdot x_i + \text{intercept} - y_i)^2$.
# Hint: either solve the normal equations $A^\top W A\,c = A^\top W y$, or scale the
# rows of the design matrix and of $y$ and call `np.linalg.lstsq`.

# %%
def weighted_line(x, y, w):
    raise NotImplementedError("replace with your code")


_ = exercises.check_weighted_line(weighted_line)

# %% [markdown]
# **3. Probing a loss surface along the gradient.** Write
# `gradient_steps(loss, grad, theta, lr, multipliers)` that measures what the
# smoothness experiment measured, for any function: with $g$ = `grad(theta)`,
# return `(loss_range, grad_change)`, where `loss_range` is the largest minus the
# smallest of `loss` over `theta` and every `theta - k * lr * g` for `k` in
# `multipliers`, and `grad_change` is the largest
# $\lVert$ `grad(theta - k * lr * g)` $- g \rVert$.

# %%
def gradient_steps(loss, grad, theta, lr, multipliers):
    raise NotImplementedError("replace with your code")


_ = exercises.check_gradient_steps(gradient_steps)

# %% [markdown]
# ## References
#
# - H. Shimodaira, *Improving predictive inference under covariate shift by weighting
#   the log-likelihood function*, Journal of Statistical Planning and Inference 90(2), 2000.
# - M. Sugiyama, M. Krauledat and K.-R. Müller, *Covariate Shift Adaptation by Importance
#   Weighted Cross Validation*, JMLR 8, 2007.
# - S. Bickel, M. Brückner and T. Scheffer, *Discriminative Learning Under Covariate Shift*,
#   JMLR 10, 2009 (density ratios from a source-vs-target classifier).
# - L. Kish, *Survey Sampling*, Wiley, 1965 (the effective sample size).
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network Training by
#   Reducing Internal Covariate Shift*, ICML 2015, arXiv:1502.03167.
# - S. Santurkar, D. Tsipras, A. Ilyas and A. Madry, *How Does Batch Normalization Help
#   Optimization?*, NeurIPS 2018, arXiv:1805.11604.
# - J. Cohen, S. Kaur, Y. Li, J. Z. Kolter and A. Talwalkar, *Gradient Descent on Neural
#   Networks Typically Occurs at the Edge of Stability*, ICLR 2021, arXiv:2103.00065.
# - N. Bjorck, C. P. Gomes, B. Selman and K. Q. Weinberger, *Understanding Batch
#   Normalization*, NeurIPS 2018, arXiv:1806.02375.
# - S. Arora, Z. Li and K. Lyu, *Theoretical Analysis of Auto Rate-Tuning by Batch
#   Normalization*, ICLR 2019, arXiv:1812.03981.
