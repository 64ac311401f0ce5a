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
# - measure how the input distribution of a deep layer moves during training, with and without batch norm;
# - explain the critical view (Santurkar et al., 2018): batch norm still works when its
#   outputs are shifted on purpose, and it makes the loss surface smoother.

# %%
import numpy as np

from bnlib import checks, data, explore_shift, plots

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
# differently. An example of my own: a model predicts how much a bridge cable
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
# The most honest misspecified model is a straight line, fit by least squares
# on the source sample. Written out:

# %%
design = np.stack([d.x_source, np.ones_like(d.x_source)], axis=1)   # columns x, 1
line = np.linalg.lstsq(design, d.y_source, rcond=None)[0]            # (slope, intercept)
checks.assert_close("line vs explore_shift.fit_line", line,
                    explore_shift.fit_line(d.x_source, d.y_source), 1e-10)
source_mse = explore_shift.mse(line, d.x_source, d.y_source)
target_mse = explore_shift.mse(line, d.x_target, d.y_target)
print(f"straight line: slope {line[0]:.3f}, intercept {line[1]:.3f}")
print(f"mean squared error on the source {source_mse:.3f}, on the target {target_mse:.3f}")
assert source_mse < 0.3 and target_mse > 5 * source_mse

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
checks.assert_close("weights vs explore_shift.importance_weights", w,
                    explore_shift.importance_weights(d.x_source, d.source_pdf, d.target_pdf), 1e-12)
print(f"mean weight {w.mean():.2f} (its expectation under the source is exactly 1)")
estimate = np.mean(w * (explore_shift.predict_line(line, d.x_source) - d.y_source) ** 2)
print(f"weighted source error of the plain line {estimate:.2f} vs its true target error {target_mse:.2f}")
assert abs(w.mean() - 1) < 0.3 and abs(estimate - target_mse) < 0.3 * target_mse

# %% [markdown]
# The weighted source error already predicts the target error of the plain
# line reasonably well. Now minimize that weighted error: a weighted least-squares
# fit, $\min_\theta \sum_i w_i\,(\theta_0 x_i + \theta_1 - y_i)^2$.

# %%
weighted_line = explore_shift.fit_line(d.x_source, d.y_source, weights=w)
weighted_target_mse = explore_shift.mse(weighted_line, d.x_target, d.y_target)
best_target_mse = explore_shift.mse(explore_shift.fit_line(d.x_target, d.y_target),
                                    d.x_target, d.y_target)
print(f"target error: plain {target_mse:.3f}, weighted {weighted_target_mse:.3f}, "
      f"best possible line (fit on labelled target data) {best_target_mse:.3f}")
assert weighted_target_mse < target_mse / 10 and weighted_target_mse < 1.1 * best_target_mse

# %% [markdown]
# The weighted line is almost as good on the target as a line fit on labelled
# target data, which we did not use. The price: its *source* error went up,
# because it now spends its single slope on the region the target cares about.
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
# `explore_shift.fit_domain_classifier` is a logistic regression on the
# features $1, x, x^2$ (the log-ratio of two Gaussians is quadratic, so this
# family fits the task), fitted with Newton's method in a few lines of NumPy.

# %%
classifier = explore_shift.fit_domain_classifier(d.x_source, d.x_target)
for x0 in (0.0, 1.0, 2.0):
    print(f"P(target | x={x0:.0f}) = {classifier(np.array([x0]))[0]:.3f}")
w_est = explore_shift.odds_weights(classifier(d.x_source), len(d.x_source), len(d.x_target))
corr = np.corrcoef(w, w_est)[0, 1]
est_line = explore_shift.fit_line(d.x_source, d.y_source, weights=w_est)
est_target_mse = explore_shift.mse(est_line, d.x_target, d.y_target)
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
ess = explore_shift.effective_sample_size(w)
print(f"400 source examples are worth about {ess:.0f} after weighting")
assert ess < 400 / 10

# %% [markdown]
# The fit above leaned on roughly 15 points. The further the target moves, the
# fewer source points resemble it, and the noisier the weighted fit becomes.
#
# ## Explorer: move the target
#
# Drag the shift. Watch three things: the plain line's target error, the two
# weighted lines, and the effective sample size in the readout.

# %%
# NBVAL_IGNORE_OUTPUT
explore_shift.shift_explorer()

# %% [markdown]
# At the default shift of 1.5 (the figure and numbers below), and the two ends
# of the slider:

# %%
fig, text = explore_shift.shift_view(shift=1.5)
print(text)
for s in (0.0, 3.0):
    r = explore_shift.shift_experiment(s)
    e = r["errors"]
    print(f"shift {s:.1f}: target MSE plain {e['plain'][1]:.3f}, weighted {e['known'][1]:.3f}, "
          f"best line {e['best'][1]:.3f}, effective sample size {r['ess']['known']:.1f}")
e0, e3 = explore_shift.shift_experiment(0.0), explore_shift.shift_experiment(3.0)
assert e0["errors"]["known"][1] < e0["errors"]["plain"][1] < 0.2
assert e3["ess"]["known"] < 2 and e3["errors"]["known"][1] > 10 * e3["errors"]["best"][1]

# %% [markdown]
# - With no shift, the weights are near one and change little.
# - At moderate shifts, weighting turns an error of about 2 into about 0.13.
# - At a shift of 3 the target sits where the source has almost no data: the
#   weighted fit rests on one or two points (effective sample size under 2) and
#   is over ten times worse than the best line. Importance weighting corrects *which*
#   data count; it cannot invent data that are not there.

# %% [markdown]
# ## Key takeaways
#
# - Covariate shift: the inputs' distribution changes ($P_S(x) \neq P_T(x)$) while
#   the rule $P(y \mid x)$ stays. It hurts because a model is only the best
#   member of its family *on the inputs it was trained on*.
# - Importance weighting by $w(x) = P_T(x)/P_S(x)$ makes the source loss an
#   estimate of the target loss; a classifier's odds times $n_S/n_T$ estimate
#   $w$ without knowing either density. It cannot help where the source has no data.

# %% [markdown]
# ## Exercises
#
# **1. Weights from a classifier.** Write `odds_weights(p_target, n_source, n_target)`
# that turns a classifier's probabilities $P(\text{target} \mid x)$ (an array) into
# importance weights $P_T(x)/P_S(x)$, for pools of `n_source` source and
# `n_target` target examples.

# %%
def my_odds_weights(p_target, n_source, n_target):
    return None  # replace with your code


checks.check_odds_weights(my_odds_weights)

# %% [markdown]
# **2. Weighted least squares.** Write `weighted_line(x, y, w)` returning
# `(slope, intercept)` that minimize $\sum_i w_i (\text{slope}\cdot x_i + \text{intercept} - y_i)^2$.
# Hint: either solve the normal equations $A^\top W A\,c = A^\top W y$, or scale the
# rows of the design matrix and of $y$ and call `np.linalg.lstsq`.

# %%
def weighted_line(x, y, w):
    return None  # replace with your code


checks.check_weighted_line(weighted_line)

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
