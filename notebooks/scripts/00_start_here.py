# %% [markdown]
# # 00 · Start here
#
# Welcome to a hands-on course on **batch normalization**. Each lesson is a
# notebook you run from top to bottom, with plots, sliders to play with, and
# every number the text relies on printed and checked by an `assert`.
#
# **After this notebook you will be able to**
# - find your way around the course and pick the lesson you need;
# - run cells, restart a kernel and use the slider explorers;
# - confirm that your environment has the packages the course was built with.

# %% [markdown]
# ## The course map
#
# | Lesson | What you will learn |
# |---|---|
# | [01 Normalization](01_normalization.ipynb) | min-max scaling and standardization; why inputs near zero keep sigmoid and tanh responsive; why round loss surfaces train faster, and why per-feature scaling rather than whitening; why every layer's pre-activations need normalizing |
# | [02 Exponentially smoothed averages](02_exponential_smoothing.ipynb) | the streaming mean, the exponential moving average, its weights, start-up bias and the three meanings of its "window", its lag against its noise when tracking a changing signal: the machinery behind running statistics |
# | [03 Batch norm: forward pass and inference](03_batchnorm_forward.ipynb) | the four steps, γ and β, ε, running statistics (warm-up and lag), the inference formula |
# | [04 Batch norm: backward pass](04_batchnorm_backward.ipynb) | the computational graph, the staged and compact gradients, checked numerically and against TensorFlow, debugging a hand-written backward pass |
# | [05 Batch norm inside a network](05_batchnorm_in_a_network.ipynb) | a from-scratch network on real digits with and without batch norm: speed, learning rates, initialization (scale invariance), depth with and without skip connections |
# | [06 Covariate shift](06_covariate_shift.ipynb) | what covariate shift is, importance weighting, internal covariate shift (drift, jitter, Santurkar's gradient measure), the smoother loss and its curvature |
# | [07 Batch norm in TensorFlow and Keras](07_batchnorm_in_tensorflow.ipynb) | the Keras layer and its conventions, bnlib vs Keras side by side, fine-tuning, folding |
# | [08 Noise, batch size and pitfalls](08_noise_batch_size_and_pitfalls.ipynb) | batch norm as a regularizer (against a no-noise control), small and unrepresentative batches, test-time adaptation, dropout and weight decay with batch norm, batch renormalization and the alternatives |
# | [09 Batch norm in convolutional networks](09_batchnorm_in_convnets.ipynb) | per-channel statistics over N·H·W vs per pixel, layer, instance and group norm; a convolution and spatial batch norm from scratch; a small CNN with and without batch norm over seeds; Keras's Conv2D + BatchNormalization; folding into the kernel |
# | [10 Batch norm across devices](10_batchnorm_across_devices.ipynb) | data-parallel training: per-replica vs synchronized statistics, combining them (and float32), the cost, ghost batch norm |
#
# The lessons build on each other in this order; 07 and 08 assume 03 and 04, 09 assumes 03, 04, 05 and 07, and 10 assumes 08.
# The helper package `bnlib` (in the repository's `bnlib/` folder) holds the
# code the lessons share, written in plain NumPy so you can read all of it.

# %% [markdown]
# ## How to run a lesson
#
# 1. Start the course from the repository folder with `make lab`: it installs
#    everything the first time and opens JupyterLab on this folder.
# 2. Run a cell with **Shift+Enter**; run a whole lesson with
#    *Run → Restart Kernel and Run All Cells*. Lessons are written to be run
#    top to bottom; if you jump around and get confused, restart and run all.
# 3. **Explorers** are a row of sliders above a readout and a plot. Drag a
#    slider and release it: the plot and the readout are recomputed. The cell
#    right after each explorer computes the same view at the default setting
#    and checks its numbers, so the lesson stays correct whatever you try.
# 4. **Exercises** at the end of each lesson ask you to write a function. Run
#    the checker cell: it prints "passed", or a hint that names the mistake,
#    or "not attempted yet" while the placeholder is still there.
#
# The first code cell of every lesson imports what it needs from `bnlib` and
# makes a seeded random generator, so your numbers match the ones printed here.

# %%
import numpy as np

from bnlib.course import environment, plots
from bnlib.lessons.lesson00 import exercises, explore

plots.use_course_style()
rng = np.random.default_rng(0)

# %% [markdown]
# ## Check your environment
#
# The course is pinned to exact package versions (see `requirements.txt`),
# which is what makes every printed number reproducible. This cell lists what
# it finds. A package that is missing or too old, or a Python outside
# 3.11-3.13, stops the cell with the fix; a version that merely differs from
# the pin (on a hosted notebook service, say) is reported and the lessons
# run, though a printed number may then differ in its last digits.

# %%
problems = environment.check()
assert not problems, "fix these first: " + "; ".join(problems)

# %% [markdown]
# ## Try an explorer
#
# A first taste of what the course is about. The slider picks the mean and
# spread of a sample; the right panel shows the same sample after
# **standardization**: subtract the mean, divide by the standard deviation.
# Whatever you choose, the result has mean 0 and standard deviation 1.

# %% tags=["nbval-ignore-output"]
explore.standardize_explorer()

# %% [markdown]
# At the default setting (mean 5, spread 3), checked:

# %%
from bnlib.course import widgets
from bnlib.course.checks import assert_below

print(widgets.readout(explore.StandardizeScene, mean=5.0, scale=3.0))
x, z = explore.standardized_sample(mean=5.0, scale=3.0)
assert_below("|mean of z|", abs(z.mean()), 1e-16)
assert_below("|std of z - 1|", abs(z.std() - 1), 1e-15)
# "whatever you choose": the slider's extreme settings give mean 0, std 1 too
for m, s in ((-10.0, 0.5), (10.0, 6.0)):
    _, z = explore.standardized_sample(mean=m, scale=s)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
print("same at the slider's extremes (mean -10, spread 0.5 and mean 10, spread 6)")

# %% [markdown]
# ## Key takeaways
#
# - Lessons run top to bottom; restart and run all when in doubt.
# - Sliders recompute a plot and a readout; the cell after them checks the defaults.
# - The environment check names anything missing: `make lab` installs it.
#
# ## Exercise
#
# Write `standardize_column(x)` that returns `(x - mean) / std` for a 1-D
# array, with the **population** standard deviation (divide by N, NumPy's
# default), then run the checker.

# %%
from bnlib.course import checks


def standardize_column(x):
    raise NotImplementedError("replace with your code")


_ = exercises.check_standardize_column(standardize_column)

# %% [markdown]
# ## References
#
# - S. Ioffe and C. Szegedy, *Batch Normalization: Accelerating Deep Network
#   Training by Reducing Internal Covariate Shift*, ICML 2015,
#   [arXiv:1502.03167](https://arxiv.org/abs/1502.03167).
# - JupyterLab documentation: [*The JupyterLab Interface*](https://jupyterlab.readthedocs.io/en/stable/user/interface.html)
#   and [*Notebooks*](https://jupyterlab.readthedocs.io/en/stable/user/notebook.html).
# - ipywidgets documentation (the sliders):
#   <https://ipywidgets.readthedocs.io/en/stable/>.
