"""bnlib: the NumPy code behind the batch-normalization course.

Modules (import the ones a lesson needs, e.g. ``from bnlib import batchnorm, plots``):

normalize   min-max scaling and standardization
ema         running mean, exponential moving average, momentum conventions
batchnorm   forward, backward, the BatchNorm layer, folding into a dense layer
gradcheck   numerical gradients and relative error
layernorm   layer norm and group norm, the batch-independent alternatives
nn          a from-scratch MLP with optional batch norm, and its training loop
data        generated and shipped data sets
checks      checked claims and exercise checkers
plots       plotting helpers           (imports matplotlib)
widgets     the slider-explorer machinery (imports ipywidgets)
explore_*   each lesson's explorers, views and helpers
internal_shift  lesson 06's network experiments (internal covariate shift, noisy batch norm)
seeds       claims about training made over several seeds (LESSON_SEEDS, TEST_SEEDS)
diagrams    draws the diagrams in images/
tf_compare  the same computations in TensorFlow/Keras (imports TensorFlow)

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
