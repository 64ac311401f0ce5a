"""bnlib: the NumPy code behind the batch-normalization course.

Import the modules a lesson needs, e.g. ``from bnlib import batchnorm, plots``.

The core: batch norm from scratch, a declared public API (``__all__`` in each
module), NumPy and SciPy only.

normalize       min-max scaling and standardization
ema             running mean, exponential moving average (``ema_update``), momentum conventions
batchnorm       the reference: forward, backward, the BatchNorm layer, folding into a dense layer
batchnorm_fast  the same for (N, D) training batches, unchecked; tested against the reference
layernorm       layer norm and group norm, the batch-independent alternatives
gradcheck       numerical gradients and relative error
nn              a from-scratch MLP with optional batch norm (FastBatchNorm), its training loop,
                ``sigmoid``, and saved states (``MLP.state``/``load_state``, ``restore_on_exit``)
data            generated and shipped data sets
tf_compare      the same computations in TensorFlow/Keras (imports TensorFlow)

Course machinery and each lesson's own code:

checks      checked claims (assert_close, assert_true, ...), check_exercise, exercise checkers
seeds       claims about training made over several seeds (LESSON_SEEDS, TEST_SEEDS)
plots       plotting helpers           (imports matplotlib)
widgets     the slider-explorer machinery (imports ipywidgets)
explore_*   each lesson's explorers, views and helpers
internal_shift  lesson 06's network experiments (internal covariate shift, noisy batch norm)
diagrams    draws the diagrams in images/

``import bnlib`` loads only the NumPy core below; TensorFlow is never
imported unless ``bnlib.tf_compare`` is.
"""
from bnlib.batchnorm import (BatchNorm, batchnorm_backward, batchnorm_forward,
                             fold_into_dense)
# The function ema.ema is not re-exported: `from bnlib import ema` must give the module.
from bnlib.ema import (bias_correct, convert_momentum, ema_weights, effective_window,
                       running_mean)
from bnlib.gradcheck import numerical_gradient, rel_error
from bnlib.normalize import min_max_scale, standardize

__all__ = ["BatchNorm", "batchnorm_backward", "batchnorm_forward", "fold_into_dense",
           "bias_correct", "convert_momentum", "ema_weights", "effective_window",
           "running_mean", "numerical_gradient", "rel_error", "min_max_scale", "standardize"]
__version__ = "0.1.0"
