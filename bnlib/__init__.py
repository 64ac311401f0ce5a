"""bnlib: the NumPy code behind the batch-normalization course.

Import the modules a lesson needs, e.g. ``from bnlib import batchnorm, nn``.

The core: batch norm from scratch, a declared public API (``__all__`` in each
module), NumPy and SciPy only.

normalize       min-max scaling and standardization
ema             running mean, exponential moving average (``ema_update``), momentum conventions
batchnorm       the reference: forward, backward, the BatchNorm layer, folding into a dense layer
batchnorm_fast  the same for (N, D) training batches, unchecked; tested against the reference
layernorm       layer norm and group norm, the batch-independent alternatives
gradcheck       numerical gradients and relative error
conv            2-D convolution (NHWC) forward/backward, pooling, folding batch norm into it
cnn             a small CNN with per-channel batch norm, trained by nn.train
nn              a from-scratch MLP with optional batch norm (FastBatchNorm), its training loop,
                ``sigmoid``, and saved states (``MLP.state``/``load_state``, ``restore_on_exit``)
data            generated and shipped data sets
distributed     combining per-replica statistics (Chan's formula), ghost batch norm
tf_compare      the same computations in TensorFlow/Keras (imports TensorFlow)
tf_distribute   logical CPU devices, MirroredStrategy, Keras batch norm per replica (imports TensorFlow)

The course floor, apart from the core (it uses the core, never the reverse):

bnlib.course       shared machinery, one home each: checks (checked claims, check_exercise),
                   widgets (explorer Scenes), plots, seeds (claims over seeds), timing,
                   environment (lesson 00's check), diagrams (images/)
bnlib.lessons      each lesson's own code: bnlib.lessons.lessonNN for notebook NN, with
                   ``explore`` (experiments, figures, explorers) and ``exercises`` (checkers)

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
