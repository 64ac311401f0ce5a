# %% [markdown]
# # 10 · Batch norm when training outgrows one device
#
# When one device is too slow, training goes **data-parallel**: every device
# holds a copy of the model (a *replica*), gets its own slice of each global
# batch, computes gradients on it, and the replicas average their gradients
# (an **all-reduce**) so that every copy takes the same step. For a dense or
# convolutional layer that is exactly the one-device computation, only spread
# out. Batch norm is the exception: its forward pass looks at the other examples
# of the batch, and a replica only sees its slice. The small-batch troubles of
# lesson 08 come back, silently, when the model moves to more devices.
#
# This lesson uses the real engine: TensorFlow's `tf.distribute.MirroredStrategy`,
# with this machine's CPU split into four *logical devices*. It is the same
# strategy, with the same replica threads and mirrored variables, as on a machine
# with four GPUs (only the all-reduce's implementation differs, see below), and
# slower.
#
# **After this lesson you will be able to**
# - run Keras data-parallel over logical CPU devices, and say why they must be
#   configured before anything else;
# - say what `BatchNormalization(synchronized=False)` computes on each replica,
#   what it stores as moving statistics, and what that means at inference;
# - show that `synchronized=True` is batch norm over the global batch, and combine
#   per-replica statistics into global ones (Chan's formula) in a form that
#   survives float32;
# - measure when per-replica statistics start to hurt, and count what
#   synchronizing costs per layer and per step;
# - implement ghost batch norm and relate it to per-replica statistics;
# - say what stays the same across several machines.

# %%
# The logical devices must exist before TensorFlow initializes its devices, which its first
# operation does, once per process. A notebook kernel is a fresh process, so this comes first.
import json

import numpy as np

from bnlib import tf_distribute   # imports TensorFlow quietly; no device is initialized yet

devices = tf_distribute.configure_cpu_devices(4)
tf, keras = tf_distribute.tf, tf_distribute.keras
from bnlib import batchnorm, distributed, gradcheck  # noqa: E402
from bnlib.course import checks, plots, seeds, widgets  # noqa: E402
from bnlib.lessons.lesson10 import exercises, experiments, explore  # noqa: E402

plots.use_course_style()
rng = np.random.default_rng(0)
print("TensorFlow", tf.__version__, "| Keras", keras.__version__)
print(len(devices), "logical devices:", ", ".join(name.split("device:")[1] for name in devices))

# %% [markdown]
# Why first: `tf.config.set_logical_device_configuration` only works before
# TensorFlow has initialized its devices, and the first tensor, model or device
# query does that for the rest of the process. Asking later for more devices than
# exist fails, and no code can repair it: only a restart can.

# %%
try:
    tf_distribute.configure_cpu_devices(8)
except RuntimeError as error:
    print("RuntimeError:", error)

# %% [markdown]
# The other way would be a helper process started by the lesson, configured on its
# own; but every process pays TensorFlow's start-up again (several seconds here),
# and its results would have to be shipped back. Configuring in the first cell
# keeps everything in this kernel.
#
# One more engine detail, measured while writing this lesson (TensorFlow 2.21): on
# CPUs, `MirroredStrategy` all-reduces with `CollectiveAllReduce`, and every
# strategy in a process numbers its collective groups from the same start. A
# second strategy over a different set of devices (2 replicas after 4) then
# collides with the first, and its first all-reduce fails ("Function was
# cancelled before it was started"). `tf_distribute.mirrored_strategy` therefore
# builds each strategy with `ReductionToOneDevice`: every replica's tensor is
# copied to device 0, added there, and the sum copied back. It also counts what it
# all-reduces, which section 4 uses.
#
# ## 1 · Per-replica statistics (the default)
#
# A global batch of 16 rows and 3 features, through a Keras `BatchNormalization`
# layer in training mode under `MirroredStrategy` with 2 and then 4 replicas.
# `tf.distribute` hands replica r the r-th consecutive slice of the batch.
# `tf_distribute.run_batchnorm` runs the layer and collects what each replica
# computed.

# %%
x = (rng.normal(size=(16, 3)) * [1.0, 2.0, 0.5] + [1.0, -2.0, 3.0]).astype(np.float32)
ones, zeros = np.ones(3), np.zeros(3)


def bn(rows):
    """bnlib's training-mode batch norm of some rows (gamma 1, beta 0), float64."""
    return batchnorm.batchnorm_forward(rows.astype(np.float64), ones, zeros, zeros, ones,
                                       training=True)[0]


for replicas in (2, 4):
    r = tf_distribute.run_batchnorm(x, replicas, synchronized=False, momentum=0.0)
    by_slice = np.concatenate([bn(s) for s in distributed.split_replicas(x, replicas)])
    checks.assert_close(f"{replicas} replicas: Keras vs batch norm of each slice", r["out"],
                        by_slice, 1e-5)
    print(f"   vs batch norm of the whole batch: max diff {np.abs(r['out'] - bn(x)).max():.1f}")

# %% [markdown]
# Each replica normalizes with the mean and variance of its own 8 or 4 rows, and
# the outputs differ from batch norm over the 16 rows by up to about one
# standard deviation. With `momentum=0.0` the moving statistics after one step
# are exactly the statistics the layer used. What does the layer hold after the
# step on 2 replicas?

# %%
r = tf_distribute.run_batchnorm(x, 2, synchronized=False, momentum=0.0)
print("replica 0's copy of moving_mean", r["moving_mean"][0].round(3))
print("replica 1's copy of moving_mean", r["moving_mean"][1].round(3))
print("layer.moving_mean reads        ", r["read_mean"].round(3))
print("get_weights() holds            ", r["saved_mean"].round(3))
print("mean of the global batch       ", x.mean(axis=0).round(3))
_ = checks.assert_close("replica 0's copy vs the mean of rows 0-7", r["moving_mean"][0],
                        x[:8].mean(axis=0), 1e-6)
assert np.array_equal(r["read_mean"], r["moving_mean"][0])
assert np.array_equal(r["saved_mean"], r["moving_mean"][0])

# %% [markdown]
# The moving mean is a *mirrored* variable, one copy per device, that is meant to
# stay identical. Keras creates it with aggregation "none", and each replica
# assigns its own update to its own copy, so the copies drift apart silently.
# Reading the variable, `get_weights()` and saving the model all return
# **replica 0's copy**: statistics of replica 0's slices only, never of the global
# batch.
#
# Over many steps that matters in two ways. The moving mean still estimates the
# population mean (from a quarter of the data, with 4 replicas). The moving
# *variance*, though, averages each slice's biased variance, whose expectation is
# $\frac{b-1}{b}\sigma^2$ for slices of b rows: with 16 rows on 4 replicas, b = 4
# and the stored variance is 25% low. We train one layer for 400 steps on
# batches of 16 rows, 64 features with known variances, momentum 0.99:

# %%
per = experiments.stored_variance(4, synchronized=False)
sync = experiments.stored_variance(4, synchronized=True)
print(f"per-replica: stored variance / true variance {per['read']:.2f} "
      f"(expected (b-1)/b = {per['per_replica_law']:.2f}); copies "
      f"{per['copies'].min():.2f} to {per['copies'].max():.2f}")
print(f"synchronized: {sync['read']:.2f} (expected (N-1)/N = {sync['global_law']:.4f}); "
      f"all copies equal: {np.all(sync['copies'] == sync['copies'][0])}")
assert abs(per["read"] - per["per_replica_law"]) < 0.03
assert abs(sync["read"] - sync["global_law"]) < 0.03 and np.ptp(per["copies"]) > 0

# %% [markdown]
# **What it means for inference.** A model trained this way is evaluated with
# replica 0's statistics: a mean from 1/R of the data and a variance that
# describes slices of b rows, not the population. The network learned to expect
# activations normalized *within small slices*, and at inference it gets them
# normalized with those stored estimates: the train/inference mismatch of lesson
# 08, now caused by the number of devices. Section 3 measures the effect on a
# trained network.
#
# Evaluating *under* the strategy is stranger still: in inference mode each
# replica reads its own copy. The same row, given to both replicas after the step
# above:

# %%
same_row = experiments.inference_on_every_replica(x, x[0], replicas=2)
print("x[0] in inference mode: replica 0 outputs", same_row[0].round(2),
      "| replica 1 outputs", same_row[1].round(2))
assert np.abs(same_row[0] - same_row[1]).max() > 0.1

# %% [markdown]
# A prediction depends on which device the example happened to land on.
#
# ## 2 · Synchronized batch norm
#
# `BatchNormalization(synchronized=True)` all-reduces the statistics, so every
# replica normalizes with the mean and variance of the whole global batch. On 4
# replicas, with an upstream gradient, against bnlib on the 16 rows at once:

# %%
dout = rng.normal(size=x.shape).astype(np.float32)
r = tf_distribute.run_batchnorm(x, 4, synchronized=True, momentum=0.9, dout=dout)
out, cache, moving_mean, moving_variance = batchnorm.batchnorm_forward(
    x.astype(np.float64), ones, zeros, zeros, ones, training=True, momentum=0.9)
dx, dgamma, dbeta = batchnorm.batchnorm_backward(dout, cache)
for name, keras_value, bnlib_value in (
        ("output", r["out"], out), ("dx", r["dx"], dx),
        ("dgamma, summed over replicas", r["dgamma"].sum(axis=0), dgamma),
        ("moving mean, every copy", r["moving_mean"], np.tile(moving_mean, (4, 1))),
        ("moving variance, every copy", r["moving_variance"], np.tile(moving_variance, (4, 1)))):
    checks.assert_close(f"{name:29s} Keras vs bnlib", keras_value, bnlib_value, 1e-5)

# %% [markdown]
# Outputs, gradients and all four copies of the moving statistics are batch norm
# over the global batch. Each replica's `dgamma` is its share; their sum, which
# the optimizer's all-reduce of the gradients forms, is the global gradient. (The
# gradient `dx` also needs the statistics' all-reduce: the gradient of an
# all-reduced sum is an all-reduced sum, so the backward pass all-reduces again.)
#
# ### The all-reduce arithmetic
#
# What must the replicas exchange? Each knows its count $n_r$, mean $\mu_r$ and
# biased variance $\sigma_r^2$. The global ones follow exactly:
#
# $$n = \sum_r n_r,\qquad \mu = \frac{1}{n}\sum_r n_r\,\mu_r,\qquad
# \sigma^2 = \frac{1}{n}\sum_r n_r\left(\sigma_r^2 + (\mu_r-\mu)^2\right).$$
#
# The variance is the average *within-replica* variance plus the variance
# *between* the replica means (Chan, Golub and LeVeque's parallel formula). Written out:

# %%
parts = distributed.split_replicas(x.astype(np.float64), 4)
counts = np.array([len(p) for p in parts])
means = np.array([p.mean(axis=0) for p in parts])
variances = np.array([p.var(axis=0) for p in parts])
n = counts.sum()
mean = (counts[:, None] * means).sum(axis=0) / n
var = (counts[:, None] * (variances + (means - mean) ** 2)).sum(axis=0) / n
checks.assert_close("Chan's formula vs the variance of all 16 rows", var,
                    x.astype(np.float64).var(axis=0), 1e-12)
combined = distributed.combine_moments(counts, means, variances)
checks.assert_close("bnlib.distributed.combine_moments vs by hand", combined.variance, var, 1e-12)
within = variances.mean(axis=0)
print(f"the average within-replica variance alone: {within.round(2)}, "
      f"global {var.round(2)}")
assert np.all(within < var)

# %% [markdown]
# Keras exchanges something else: three all-reduces per layer, the **count**,
# the **sum** of x and the **sum of x²**, then $\sigma^2 = \overline{x^2} - \mu^2$
# (`_compute_moments_sync` in `keras/src/backend/tensorflow/nn.py`, clipped at
# 0). In real numbers that is the same variance. In float32, with about 7
# significant digits, it subtracts two nearly equal numbers when the mean is
# large next to the spread: $\overline{x^2}$ is rounded at a relative $6\cdot
# 10^{-8}$, and that error lands on the small difference, so the variance's
# relative error grows like $6\cdot10^{-8}\,(\mu/\sigma)^2$. Three ways to
# combine 4 replicas' pieces in float32, and Keras's layer itself:

# %%
ratios = np.array([1.0, 10.0, 100.0, 1e3, 3e3, 1e4])
errors = explore.cancellation_errors(ratios)
measured = experiments.keras_sync_variance(ratios)
fig = explore.cancellation_figure(ratios, errors, measured)
bad = measured["relative_error"][ratios >= 3e3]
print("Keras synchronized, mean/std 3e3 and 1e4: variance off by more than 50%:",
      bool(np.all(bad > 0.5)), "| output std outside [0.5, 2]:",
      bool(np.all((measured["output_std_min"][ratios >= 3e3] < 0.5)
                  | (measured["output_std_max"][ratios >= 3e3] > 2))))
checks.assert_below("Keras synchronized=False (tf.nn.moments), worst relative error",
                    measured["one_replica_error"].max(), 1e-5)
checks.assert_below("Chan's formula in float32, worst relative error", errors["chan"].max(), 1e-2)
checks.assert_below("shifted sums in float32, worst relative error", errors["shifted"].max(), 1e-3)
assert np.all(bad > 0.5) and errors["sums"][-1] > 0.5

# %% [markdown]
# The sums form tracks the law, and so does Keras's layer: at mean/std = 1000 its
# variance is off by several percent, at 3,000 it is lost (clipped to zero, or
# too large), and the outputs are no longer standardized. The two repairs:
#
# - **Chan's formula**: each replica computes its mean and variance in two passes
#   (accurate), and the replicas exchange the (count, mean, variance) triples,
#   either gathered and combined on every replica, or in two all-reduce rounds:
#   first $n_r$ and $n_r\mu_r$ (the global mean), then
#   $n_r(\sigma_r^2 + (\mu_r-\mu)^2)$. No sum of squares of large numbers is
#   ever formed.
# - **The shift trick** (bnlib's batch norm already subtracts the first example
#   before summing, lesson 03): all replicas subtract the same $K$ close to the
#   mean (replica 0's first example, broadcast, or the moving mean), then
#   all-reduce the count, $\sum(x-K)$ and $\sum(x-K)^2$. One round, and the error
#   depends on $(\mu-K)/\sigma$ instead of $\mu/\sigma$.
#
# Hidden pre-activations rarely have a mean thousands of times their spread, but a
# batch-norm layer applied directly to raw input features (timestamps, prices,
# unscaled sensor readings) can.
#
# ## 3 · When per-replica statistics hurt
#
# Now a whole network: 64 pixels → dense 64 → batch norm → ReLU → dense 64 →
# batch norm → ReLU → 10 logits, on the digits, 300 SGD steps (learning rate
# 0.05, batch-norm momentum 0.9 so that the moving statistics settle in 300
# steps). The **global batch is fixed** at 8 and spread over 1 or 4 replicas,
# with per-replica or synchronized statistics: on 4 replicas, each replica
# normalizes 2 examples. Every run starts from the same initial weights (drawn by
# NumPy for the seed) and sees the same batches; only the normalization differs.
# Two measures on the 450 test digits:
#
# - test accuracy in **inference mode** (the stored moving statistics: replica 0's);
# - the **train/inference mismatch**: inference-mode accuracy minus the accuracy
#   when test batches of the training-time size (the per-replica batch, or the
#   global batch when synchronized) are normalized with their own statistics, as
#   in training.
#
# Three seeds here (9 trainings, about 15 s); the tests run five more.

# %%
claim = experiments.replica_claim(seeds.LESSON_SEEDS)
one, per, sync = claim["one_device"], claim["per_replica"], claim["synchronized"]
gap = lambda m: m["inference"] - m["batch_mode"]  # noqa: E731
checks.assert_true("synchronized on 4 replicas trains what one device trains "
                   "(test accuracy within 0.01 on every seed)",
                   np.all(np.abs(sync["inference"] - one["inference"]) <= 0.01))
checks.assert_true("per-replica statistics (2 examples each) lose over 5 points on every seed",
                   np.all(sync["inference"] - per["inference"] > 0.05))
checks.assert_true("their train/inference mismatch is over twice the synchronized one, "
                   "on every seed", np.all(gap(per) > 2 * gap(sync)))

# %% [markdown]
# The same runs are in the explorer's table, trained ahead of time by
# `python -m bnlib.lessons.lesson10.explore` on five seeds (this lesson's three
# and two more), with global batches of 16 and 32 and 2 replicas too. Its numbers:

# %%
table = explore.table()
settings = {"one_device": (8, 1, False), "per_replica": (8, 4, False),
            "synchronized": (8, 4, True)}
for name, key in settings.items():
    e = table[key]
    print(f"{name:13s} test accuracy {seeds.spread(e['inference'])};  "
          f"mismatch {seeds.spread(explore.mismatch(e))}")

# %% [markdown]
# Synchronized batch norm on 4 replicas is the one-device network, seed for seed.
# With per-replica statistics each replica normalizes 2 examples, every
# normalized value is about ±1 (lesson 08), and the network falls far behind; it
# also does much better in inference mode than when test data is normalized the
# way it trained: a mismatch several times the synchronized network's.
#
# The fresh runs against the table: the one-device and synchronized runs to one
# test digit per seed. The per-replica runs with 2 examples per replica are
# *chaotic*: on a CPU with other matrix kernels (tried with
# `ONEDNN_MAX_CPU_ISA=AVX2`) their accuracy moves by a few points per seed, so
# only their median is compared, and no single run of theirs is printed.

# %%
for name in ("one_device", "synchronized"):
    saved = table[settings[name]]["inference"][:3]        # seeds 0, 1, 2
    checks.assert_true(f"table {settings[name]} = the fresh {name} runs (to 1/450 per seed)",
                       np.all(np.abs(saved - claim[name]["inference"]) <= 1 / 450 + 1e-9))
saved = table[settings["per_replica"]]["inference"][:3]
checks.assert_true(f"table {settings['per_replica']}: median within 0.05 of the fresh runs'",
                   abs(np.median(saved) - np.median(per["inference"])) <= 0.05)
assert explore.TABLE_SEEDS[:3] == seeds.LESSON_SEEDS

# %% [markdown]
# Where does it start to hurt? The table, over five seeds, by examples per
# replica (median test-accuracy loss of per-replica against synchronized
# statistics, same global batch):

# %%
loss = explore.per_replica_losses(table)     # (global batch, replicas) -> loss per seed
for (g, r), v in loss.items():
    print(f"global {g:2d} on {r} replicas = {g // r:2d} per replica: loss {seeds.spread(v)}")
for verdict, holds in explore.hurt_verdicts(loss).items():
    checks.assert_true(verdict, holds)

# %% [markdown]
# On this network and data, per-replica statistics are harmless from about 8
# examples per replica, cost a couple of points at 4 and far more at 2 (a median
# of 16 points).
# The threshold depends on the network and the data, but the lesson holds in
# general: what matters is the **per-replica** batch, not the global one. A
# global batch of 256 on 64 GPUs normalizes over 4 examples. Typical practice:
# keep 16 or more examples per device for batch norm (Goyal et al. 2017 trained
# ImageNet in large batches with batch norm over 32 images per GPU), or
# synchronize, or use a batch-independent norm (lesson 08).
#
# **Determinism.** On one machine every run is reproducible to the last bit: the
# initial weights and the batch order come from NumPy generators, nothing random
# happens inside TensorFlow, oneDNN's graph rewrites are off
# (`bnlib.tf_distribute` sets `TF_ENABLE_ONEDNN_OPTS=0`), the all-reduce adds
# the replicas' tensors in a fixed order on device 0 (and TensorFlow's
# deterministic kernels are on, `enable_op_determinism`). Check it: train the
# same seed twice on 4 replicas and compare every weight bit for bit.

# %%
trainer = experiments.trainer(4, False, 8)
first = trainer.train(0)["weights"]
second = trainer.train(0)["weights"]
checks.assert_true("two runs of seed 0 on 4 replicas give bit-identical weights",
                   all(np.array_equal(a, b) for a, b in zip(first, second)),
                   f"{len(first)} arrays, {sum(w.size for w in first)} numbers")

# %% [markdown]
# Across machines it is not bit for bit. The tests train again in fresh
# processes: with one intra-op thread, or with NumPy's AVX2 loops, the weights are
# identical; with `ONEDNN_MAX_CPU_ISA=AVX2` they are not, because TensorFlow's
# matrix products dispatch on the instruction set even with oneDNN's graph
# rewrites off (measured: `tf.matmul`'s result bits change, its reductions'
# do not). There, the one-device and synchronized runs keep every accuracy
# exactly, per-replica runs with 4 or more examples per replica move by at most 2
# of the 450 test digits, and the chaotic 2-per-replica runs by up to 6 points:
# that is why this lesson prints their numbers only from the table.
#
# ## 4 · What synchronizing costs
#
# `CountingReduction` counted what one training step all-reduces while it was
# traced: per tensor, per step, whatever the number of replicas.

# %%
per_tensors, per_numbers = experiments.trainer(4, False, 8).counts
sync_tensors, sync_numbers = experiments.trainer(4, True, 8).counts
print(f"per-replica : {per_tensors} all-reduces per step ({per_numbers} numbers: the gradients)")
print(f"synchronized: {sync_tensors} all-reduces per step ({sync_numbers} numbers)")
extra = sync_tensors - per_tensors
print(f"extra: {extra} all-reduces = 5 per batch-norm layer (3 forward: count, sum, sum of "
      f"squares; 2 backward), {sync_numbers - per_numbers} numbers")
assert per_tensors == 8 and extra == 5 * 2 and sync_numbers - per_numbers == 5 * 2 * 64

# %% [markdown]
# In bytes the synchronization is small: 640 numbers against 9,098 for the
# gradients. In *count* it more than doubles the all-reduces, and where they sit
# matters more than their size. The gradient all-reduces come once, at the end of
# the step, and real systems bucket them into a few large messages and overlap them
# with the backward pass. Batch norm's three forward all-reduces sit *inside* the
# forward pass: layer k+1 cannot start until layer k's statistics are back, and
# every replica waits for the slowest (Keras does not even batch the three: its
# source says so, with a TODO). An all-reduce of a few hundred bytes costs its
# latency: on a ring of R devices (NCCL), 2(R−1) sequential hops; through one
# device, as here, 2(R−1) copies. So the cost grows with the number of devices
# and with the depth of the network (one round per layer), not with its width.
#
# Timed on this machine (this varies from run to run and machine to machine, so
# it is not checked):

# %% tags=["nbval-ignore-output"]
t_one = experiments.trainer(1, False, 8).time_steps()
t_per = experiments.trainer(4, False, 8).time_steps()
t_sync = experiments.trainer(4, True, 8).time_steps()
print(f"one step: 1 device {1e3 * t_one:.1f} ms; 4 replicas, per-replica {1e3 * t_per:.1f} ms, "
      f"synchronized {1e3 * t_sync:.1f} ms (+{1e3 * (t_sync - t_per) / 10:.2f} ms per "
      "all-reduce)")

# %% [markdown]
# On one CPU the replicas take turns on two cores, so more replicas make a step
# slower, not faster; the point here is only the difference between the last two.
# How one all-reduce of a batch-norm vector (64 numbers) scales with the number
# of devices, timed alone (20 in a chain, each waiting for the one before, as
# batch norm's layers do):

# %% tags=["nbval-ignore-output"]
latency = {r: experiments.all_reduce_time(r) for r in (2, 3, 4)}
print("one all-reduce of 64 numbers: " + ", ".join(
    f"{r} replicas {1e6 * t:.0f} µs" for r, t in latency.items()))
slope = np.polyfit(list(latency), list(latency.values()), 1)[0]
print(f"about {1e6 * slope:.0f} µs more per extra device")

# %% [markdown]
# Through one device, each all-reduce makes 2(R−1) copies one after the other, so
# its time grows about linearly with the number of devices, as measured here; a
# ring does the same number of sequential steps. For vectors this small, that
# latency is the whole cost.
#
# ## 5 · Ghost batch norm
#
# Per-replica statistics are usually an accident of the hardware. **Ghost batch
# norm** (Hoffer, Hubara and Soudry 2017) does the same on purpose: inside a large
# batch, every block of `ghost_size` consecutive examples is normalized with its
# own statistics. Hoffer et al. found that the "generalization gap" of large-batch
# training comes mostly from making too few updates, and proposed ghost batch norm
# as one way to reduce it without more updates (experiments on MNIST, CIFAR-10,
# CIFAR-100 and ImageNet): the large batch keeps its efficiency, the normalization
# keeps the noise of small batches.
#
# Written out on 12 rows in ghost batches of 4, then compared with
# `bnlib.distributed.ghost_batchnorm_forward` (which reshapes the batch into ghost
# batches and calls `bnlib.batchnorm`) and its backward pass against numerical
# gradients:

# %%
xg = rng.normal(2.0, 1.5, size=(12, 3))
blocks = xg.reshape(3, 4, 3)                       # 3 ghost batches of 4 consecutive rows
mu_g = blocks.mean(axis=1, keepdims=True)
var_g = ((blocks - mu_g) ** 2).mean(axis=1, keepdims=True)
by_hand = ((blocks - mu_g) / np.sqrt(var_g + 1e-3)).reshape(12, 3)
out, cache, _, _ = distributed.ghost_batchnorm_forward(xg, ones, zeros, zeros, ones,
                                                       ghost_size=4, training=True)
checks.assert_close("ghost batch norm, by hand vs bnlib", out, by_hand, 1e-12)
dout_g = rng.normal(size=xg.shape)
dx_g, _, _ = distributed.ghost_batchnorm_backward(dout_g, cache)
dx_num = gradcheck.numerical_gradient(
    lambda v: distributed.ghost_batchnorm_forward(v, ones, zeros, zeros, ones, ghost_size=4,
                                                  training=True)[0], xg, dout_g)
_ = checks.assert_below("dx relative error vs numerical gradient",
                        gradcheck.rel_error(dx_g, dx_num), 1e-7)

# %% [markdown]
# And per-replica statistics **are** ghost batch norm: Keras on 4 replicas,
# without synchronization, against bnlib's ghost batch norm with ghost batches of
# 16 / 4 = 4 rows, on the same batch and upstream gradient as in section 2:

# %%
r = tf_distribute.run_batchnorm(x, 4, synchronized=False, momentum=0.9, dout=dout)
out, cache, moving_mean, _ = distributed.ghost_batchnorm_forward(
    x.astype(np.float64), ones, zeros, zeros, ones, ghost_size=4, training=True, momentum=0.9)
dx, dgamma, dbeta = distributed.ghost_batchnorm_backward(dout, cache)
for name, keras_value, bnlib_value in (("output", r["out"], out), ("dx", r["dx"], dx),
                                       ("dgamma summed", r["dgamma"].sum(axis=0), dgamma),
                                       ("dbeta summed", r["dbeta"].sum(axis=0), dbeta)):
    checks.assert_close(f"{name:13s} Keras per-replica vs bnlib ghost", keras_value,
                        bnlib_value, 1e-5)
print(f"moving mean: Keras keeps replica 0's ({r['read_mean'].round(2)}), ghost batch norm "
      f"the average of the ghosts ({moving_mean.round(2)})")

# %% [markdown]
# Same outputs, same gradients (once the optimizer sums the replicas' shares).
# The one difference is the moving statistics: ghost batch norm averages every
# ghost batch's statistics, Keras keeps replica 0's. tf.keras 2 had ghost batch
# norm built in, as `BatchNormalization(virtual_batch_size=...)`; the Keras pinned
# here does not:

# %%
print("Keras", keras.__version__, "accepts virtual_batch_size:",
      experiments.keras_accepts_virtual_batch_size())
assert not experiments.keras_accepts_virtual_batch_size()

# %% [markdown]
# What ghost batches do to the noise: the mean an example is normalized with, in
# batches of 256 digits cut into ghost batches, wanders around the population mean
# by $1/\sqrt{\text{ghost size}}$ population standard deviations (lesson 08's law),
# whatever the real batch size:

# %%
ghost_sizes = (256, 64, 16, 4)
noise = explore.ghost_mean_noise(ghost_sizes)
for g, s in zip(ghost_sizes, noise):
    print(f"ghost size {g:3d}: spread of the batch mean {s:.3f} (1/sqrt(g) = {g ** -0.5:.3f})")
assert np.allclose(noise * np.sqrt(ghost_sizes), 1.0, atol=0.1)

# %% [markdown]
# And on training: a 64-64-64-10 ReLU network (bnlib, NumPy), batches of 256,
# 100 SGD steps at learning rate 0.5, plain batch norm over the 256 (what
# synchronized batch norm computes on any number of devices) against ghost
# batches of 16 and 4, three seeds:

# %%
ghost = explore.ghost_claim(seeds.LESSON_SEEDS)
for g, (test, train) in ghost.items():
    label = "plain (one ghost of 256)" if g == 256 else f"ghost batches of {g}"
    print(f"{label:25s} test {seeds.spread(test)}   train {seeds.spread(train, '.3f')}")
plain_test, plain_train = ghost[256]
checks.assert_true("ghost 16: median test accuracy within 1 point of plain batch norm",
                   abs(np.median(ghost[16][0]) - np.median(plain_test)) <= 0.01)
checks.assert_true("ghost 4: the training set is no longer fitted (train accuracy below "
                   "99.5% on every seed, plain at or above)",
                   np.all(ghost[4][1] < 0.995) and np.all(plain_train >= 0.995))

# %% [markdown]
# On the digits, large batches have no generalization gap to close (plain batch
# norm fits at least 99.9% of the training digits and generalizes as well as
# ghost batches of 16), so ghost batches of 16 change nothing measurable. Ghost
# batches of 4 inject so much noise that the network no longer fits its training
# set: that is the regularizer at work, here too strong; the same kind of noise,
# at 2 examples per replica, cost 16 points in section 3. Ghost batch norm is a knob: the ghost size
# sets the noise, independently of the batch size the hardware wants.
#
# ## 6 · Beyond one machine
#
# `tf.distribute.MultiWorkerMirroredStrategy` runs the same program as one process
# per machine (a *worker*), each with its own devices. Each worker learns the
# cluster from the `TF_CONFIG` environment variable, which names every worker's
# address and its own index:

# %%
cluster = {"cluster": {"worker": ["host-a:12345", "host-b:12345"]},
           "task": {"type": "worker", "index": 0}}
print("TF_CONFIG =", json.dumps(cluster))

# %% [markdown]
# Everything in this lesson carries over: a replica still normalizes its own
# slice unless the layer is synchronized, the moving statistics are still each
# replica's own, and `synchronized=True` still equals batch norm over the global
# batch, with the statistics' all-reduces now crossing the network, where each
# round trip costs far more than between GPUs of one machine. That is one reason
# large jobs often keep per-device statistics with enough examples per device, or
# synchronize only within small groups of devices (PyTorch's `SyncBatchNorm`
# takes a process group for that).
#
# Two workers can run on one machine too, but not in this lesson's Run All (each
# starts TensorFlow, about 20 s) and not naively: every worker starts
# TensorFlow's gRPC server, and it listens on **all** network interfaces
# whatever host `TF_CONFIG` names (measured: a server configured as
# `127.0.0.1:23456` listens on `[::]:23456`). So
# `bnlib.lessons.lesson10.multiworker` starts the two workers inside a private
# network namespace (`unshare -rn`), whose only interface is its own loopback,
# bounds their time and kills them on any failure. Each worker trains one
# batch-norm step on its half of a global batch of 16 rows. The tests check what
# they compute: per-replica, each worker normalizes its 8 rows and keeps their
# statistics; synchronized, both workers output batch norm over all 16 rows and
# hold the same moving statistics, the global batch's. Run it yourself with
# `python -m bnlib.lessons.lesson10.multiworker`.
#
# ## Explorer: replicas and global batch
#
# Every setting trained ahead of time on five seeds (dots; the line is the
# median): choose the global batch and the number of replicas. The left panel is
# the inference-mode test accuracy, the right one the train/inference mismatch,
# for per-replica (red) and synchronized (blue) statistics.

# %% tags=["nbval-ignore-output"]
explore.replica_explorer()

# %% [markdown]
# At the default setting (global batch 8, 4 replicas), checked:

# %%
print(widgets.readout(explore.ReplicaScene, global_batch=8, replicas=4))
e_per, e_sync = table[8, 4, False], table[8, 4, True]
assert np.all(e_sync["inference"] - e_per["inference"] > 0.05)
assert np.all(explore.mismatch(e_per) > 2 * explore.mismatch(e_sync))

# %% [markdown]
# ## Key takeaways
#
# - Under data parallelism each replica normalizes **its own slice**: batch
#   norm's statistics are per-replica statistics, with the per-replica batch
#   size, whatever the global batch. (`tf.distribute` hands out consecutive slices.)
# - Keras keeps one copy of the moving statistics per replica and lets them
#   drift; the variable, `get_weights()` and a saved model hold **replica 0's**
#   copy, whose variance is the per-replica biased one, $\frac{b-1}{b}\sigma^2$.
# - `synchronized=True` is batch norm over the global batch: same outputs,
#   gradients and moving statistics as one device, for 5 extra all-reduces per
#   layer per step (3 in the forward pass, where they block).
# - Global statistics from per-replica ones: $\mu = \sum n_r\mu_r/n$,
#   $\sigma^2 = \sum n_r(\sigma_r^2 + (\mu_r-\mu)^2)/n$. The sum-of-squares
#   form Keras uses loses the variance in float32 when |mean| ≫ std; a shared
#   shift or Chan's formula keeps it.
# - Per-replica statistics hurt when the per-replica batch is small (here: fine
#   at 8, a couple of points at 4, 16 points at 2). Keep enough examples per device,
#   synchronize, or use a batch-independent norm.
# - Ghost batch norm is per-replica statistics on purpose: the ghost size sets the
#   normalization noise independently of the hardware's batch.
# - Configure logical devices before TensorFlow initializes them; make runs
#   reproducible (oneDNN off, seeded NumPy inputs, a fixed-order all-reduce) and
#   check it bit for bit.
#
# ## Exercises
#
# **1. Combine per-replica statistics.** Write
# `combine_replica_stats(counts, means, variances)` returning the global
# `(mean, variance)` (biased) from arrays of shape (R,), (R, D) and (R, D): each
# replica's count, mean and biased variance. The replicas may hold different
# numbers of examples.

# %%
def combine_replica_stats(counts, means, variances):
    raise NotImplementedError("replace with your code")


_ = exercises.check_combine_replica_stats(combine_replica_stats)

# %% [markdown]
# **2. What does the layer store?** A Keras `BatchNormalization` layer (moving
# mean 0 and variance 1 at the start) is trained under `MirroredStrategy` on R
# replicas with the global batches `batches` of shape (T, N, D), in order. Write
# `stored_moving_stats(batches, replicas, momentum, synchronized)` returning the
# `(moving_mean, moving_variance)` that `layer.moving_mean` and
# `layer.moving_variance` read afterwards.

# %%
def stored_moving_stats(batches, replicas, momentum, synchronized):
    raise NotImplementedError("replace with your code")


_ = exercises.check_stored_moving_stats(stored_moving_stats)

# %% [markdown]
# **3. Ghost batch norm.** Write `ghost_batchnorm(x, gamma, beta, ghost_size, eps)`
# for x of shape (N, D), N a multiple of `ghost_size`: training-mode batch norm with
# each block of `ghost_size` consecutive rows normalized by its own statistics.

# %%
def ghost_batchnorm(x, gamma, beta, ghost_size, eps):
    raise NotImplementedError("replace with your code")


_ = exercises.check_ghost_batchnorm(ghost_batchnorm)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network Training
#   by Reducing Internal Covariate Shift*, ICML 2015.
# - E. Hoffer, I. Hubara and D. Soudry, *Train longer, generalize better: closing the
#   generalization gap in large batch training of neural networks*, NeurIPS 2017
#   (ghost batch normalization).
# - P. Goyal et al., *Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour*,
#   arXiv:1706.02677, 2017 (batch norm statistics per worker in large-batch training).
# - C. Peng et al., *MegDet: A Large Mini-Batch Object Detector*, CVPR 2018
#   (cross-GPU, i.e. synchronized, batch normalization).
# - Y. Wu and J. Johnson, *Rethinking "Batch" in BatchNorm*, arXiv:2105.07576, 2021.
# - T. F. Chan, G. H. Golub and R. J. LeVeque, *Algorithms for Computing the Sample
#   Variance: Analysis and Recommendations*, The American Statistician 37(3), 1983
#   (the pairwise/parallel update, and why the sum-of-squares form is unstable).
# - TensorFlow guide, *Distributed training with TensorFlow*,
#   https://www.tensorflow.org/guide/distributed_training
# - TensorFlow API, `tf.config.set_logical_device_configuration`,
#   https://www.tensorflow.org/api_docs/python/tf/config/set_logical_device_configuration
# - Keras documentation, *BatchNormalization layer* (`synchronized`),
#   https://keras.io/api/layers/normalization_layers/batch_normalization/
# - Keras source, `_compute_moments_sync` in `keras/src/backend/tensorflow/nn.py`
#   (the count, sum and sum-of-squares all-reduces).
