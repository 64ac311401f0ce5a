"""A small from-scratch multilayer perceptron, with optional batch norm, trained by SGD.

The network is a stack of dense layers. Every hidden layer is followed by an
activation (sigmoid, tanh or ReLU) and, optionally, by a normalization layer
placed *before* the activation (dense -> norm -> activation, the placement of
Ioffe & Szegedy 2015; the dense layer then has no bias, since the norm's beta
replaces it) or *after* it (dense -> activation -> norm). The last dense layer
returns logits, which :func:`softmax_cross_entropy` turns into a loss.

Everything is vectorized NumPy (float64 by default). The matrices are small,
so :func:`train` runs BLAS on one thread: on a shared, busy machine, OpenBLAS's
threads make such tiny products slower, not faster.

The public entry points (:class:`MLP`, :meth:`MLP.forward`, :meth:`MLP.backward`,
:func:`softmax_cross_entropy`, :func:`accuracy`, :func:`sgd_step`, :func:`train`)
check their arguments once per call and raise a ``ValueError`` that names the
bad one; the steps inside :func:`train` run unchecked (``MLP._forward`` and
friends), so the checks cost nothing per step.

Public API: :func:`sigmoid`, :class:`FastBatchNorm`, :class:`MLP` (with
:meth:`MLP.state` / :meth:`MLP.load_state` to save and restore a model),
:func:`restore_on_exit`, :func:`softmax_cross_entropy`, :func:`accuracy`,
:func:`sgd_step`, :func:`batch_indices`, :func:`train` and its :class:`History`.

Example
-------
>>> from bnlib import data, nn
>>> split = data.digits()
>>> model = nn.MLP((64, 100, 100, 10), norm="batch", seed=0)
>>> history = nn.train(model, split, steps=200, lr=0.1)
>>> bool(history.test_accuracy[-1] > 0.8)
True
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit
from threadpoolctl import threadpool_limits

from bnlib._validate import (as_float_array, check_axis_spec, check_bool, check_choice,
                             check_eps, check_float_dtype, check_int, check_labels,
                             check_momentum, check_real, check_seed, describe)
from bnlib.batchnorm import BatchNorm
from bnlib.batchnorm_fast import batchnorm_backward_fast, batchnorm_forward_fast

__all__ = ["ACTIVATIONS", "NORM_POSITIONS", "sigmoid", "FastBatchNorm", "Parameters", "MLP",
           "restore_on_exit", "softmax_cross_entropy", "accuracy", "sgd_step", "History",
           "batch_indices", "train"]

ACTIVATIONS = ("sigmoid", "tanh", "relu")
NORM_POSITIONS = ("before", "after")


def sigmoid(z):
    """The logistic sigmoid 1 / (1 + exp(-z)), elementwise, without overflow for large |z|.

    The network's sigmoid activation; its slope is s * (1 - s) with s = sigmoid(z).
    ``z`` must be finite (a number, a list or an array).
    """
    return expit(as_float_array("z", z))


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    return np.maximum(z, 0.0)


def _activation_grad(name: str, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
    """dL/dz from dL/da, given z and a = activation(z)."""
    if name == "sigmoid":
        return da * a * (1.0 - a)
    if name == "tanh":
        return da * (1.0 - a * a)
    return da * (z > 0)


class FastBatchNorm(BatchNorm):
    """:class:`bnlib.batchnorm.BatchNorm` for (N, D) input, without argument checks.

    Same parameters, attributes and results as BatchNorm with ``axis=-1``
    (the tests compare the two), computed by :mod:`bnlib.batchnorm_fast`,
    which skips the argument checks that cost more than the arithmetic on
    the small batches the lessons train on. The moving statistics follow
    :func:`bnlib.ema.ema_update`, as in BatchNorm. ``norm="batch"`` uses it.
    """

    _backward_pass = staticmethod(batchnorm_backward_fast)

    def __init__(self, shape, *, momentum: float = 0.99, eps: float = 1e-3, axis=-1,
                 unbiased_moving_variance: bool = False, dtype=np.float64):
        check_axis_spec(axis)
        if axis not in (-1, 1):
            raise ValueError(f"FastBatchNorm normalizes (N, D) input per feature (axis=-1); "
                             f"got axis={axis!r}: use bnlib.batchnorm.BatchNorm for other axes")
        super().__init__(shape, momentum=momentum, eps=eps, axis=axis,
                         unbiased_moving_variance=unbiased_moving_variance, dtype=dtype)

    def __call__(self, x, *, training: bool) -> np.ndarray:
        out, self._cache, self.moving_mean, self.moving_variance = batchnorm_forward_fast(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            training=training, momentum=self.momentum, eps=self.eps,
            unbiased_moving_variance=self.unbiased_moving_variance)
        return out


def _check_sizes(sizes) -> tuple:
    expected = ("a sequence of at least two positive integers, input to output widths, e.g. "
                "(64, 100, 10)")
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"sizes must be {expected}; got {describe(sizes)}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes must be {expected}; got {describe(sizes)}")
    for s in sizes:
        check_int("sizes", s, minimum=1, hint=f" (every width of {describe(sizes)})")
    return tuple(int(s) for s in sizes)


_LAYER_INTERFACE = ("__call__", "backward", "gamma", "beta")


class Parameters:
    """What a trainable model shares: its parameters listed by ``_entries()``.

    A model (:class:`MLP`, :class:`bnlib.cnn.CNN`) defines ``_entries()``, the
    (name, parameter, gradient) of every trainable array in a fixed order; the
    methods here read that list, so the order lives in one place.
    """

    def _entries(self) -> list:
        raise NotImplementedError

    def param_names(self) -> list:
        """Names aligned with :meth:`params` (W1, b1, gamma1, beta1, ... or kernel1, ...)."""
        return [name for name, _, _ in self._entries()]

    def params(self) -> list:
        """The trainable arrays themselves (update them in place)."""
        return [p for _, p, _ in self._entries()]

    def grads(self) -> list:
        """Gradients from the last ``backward``, aligned with :meth:`params`."""
        return [g for _, _, g in self._entries()]

    def n_params(self) -> int:
        """Total number of trainable numbers."""
        return int(sum(p.size for p in self.params()))


class MLP(Parameters):
    """Dense layers with an activation and optional normalization after each hidden layer.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. (64, 100, 100, 10): 64 inputs,
        two hidden layers of 100 units, 10 logits.
    activation : {"sigmoid", "tanh", "relu"}
    norm : None, "batch" or callable
        None: no normalization. "batch": a batch-norm layer per hidden layer
        (:class:`FastBatchNorm`, i.e. :class:`bnlib.batchnorm.BatchNorm`
        without the argument checks). A callable ``make_norm(width)`` must return a layer
        with the same interface (``__call__(x, *, training)``, ``backward(dout)``,
        ``gamma``, ``beta``, ``dgamma``, ``dbeta``), e.g. a layer norm.
    norm_position : {"before", "after"}
        Normalize the pre-activation (dense -> norm -> activation; that dense
        layer has no bias) or the activation's output (dense -> activation -> norm).
    init_scale : float > 0
        Weights are drawn from N(0, init_scale**2 / fan_in); 1 is LeCun's scaling.
        Biases start at 0.
    seed : int >= 0
        Seed of the weight initialization.
    momentum, eps : float
        Passed to each BatchNorm layer (Keras convention and defaults).
    dtype : np.float32 or np.float64, default float64
    residual : bool, default False
        True adds a skip connection around every hidden layer whose input and
        output widths match: that layer returns ``h + f(h)``, where ``f`` is
        its usual dense -> (norm) -> activation (-> norm) path and ``h`` its
        input (an identity shortcut, as in He et al. 2016). The first hidden
        layer has one only if ``sizes[0] == sizes[1]``; the output layer never has.

    Attributes
    ----------
    weights : list of ndarray, shapes (sizes[i], sizes[i + 1])
    biases : list of ndarray of shape (sizes[i + 1],) or None (no bias)
    norms : list of layer or None, one per hidden layer
    pre_activations : list of ndarray of shape (N, width)
        The input of each hidden activation in the last forward pass.
    activations : list of ndarray of shape (N, width)
        The output of each hidden activation in the last forward pass.
    skips : list of bool, one per hidden layer
        Whether that layer has a skip connection (all False unless ``residual``).
    """

    def __init__(self, sizes, *, activation: str = "sigmoid", norm=None,
                 norm_position: str = "before", init_scale: float = 1.0, seed: int = 0,
                 momentum: float = 0.99, eps: float = 1e-3, dtype=np.float64,
                 residual: bool = False):
        sizes = _check_sizes(sizes)
        residual = check_bool("residual", residual)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("norm_position", norm_position, NORM_POSITIONS)
        if not (norm is None or (isinstance(norm, str) and norm == "batch")
                or (callable(norm) and not isinstance(norm, str))):
            raise ValueError(f"norm must be None, 'batch' or a callable make_norm(width); "
                             f"got {describe(norm)}")
        init_scale = check_real("init_scale", init_scale, minimum=0, open_min=True,
                                hint=" (1 is LeCun's scaling)")
        check_seed("seed", seed)
        momentum, eps = check_momentum(momentum), check_eps(eps)
        self.dtype = check_float_dtype("dtype", dtype)
        if self.dtype == np.float16:
            raise ValueError("dtype must be np.float32 or np.float64 (the training path is not "
                             "written for float16); got float16")
        self.sizes = sizes
        self.skips = [residual and sizes[i] == sizes[i + 1] for i in range(len(sizes) - 2)]
        self.activation = activation
        self.norm_position = norm_position
        rng = np.random.default_rng(seed)
        n_hidden = len(sizes) - 2
        if norm is None:
            self.norms = [None] * n_hidden
        elif isinstance(norm, str):
            self.norms = [FastBatchNorm(w, momentum=momentum, eps=eps, dtype=self.dtype)
                          for w in sizes[1:-1]]
        else:
            self.norms = [norm(w) for w in sizes[1:-1]]
            for w, layer in zip(sizes[1:-1], self.norms):
                missing = [a for a in _LAYER_INTERFACE if not hasattr(layer, a)]
                if missing:
                    raise ValueError(f"norm must return a layer with __call__(x, *, training), "
                                     f"backward(dout), gamma and beta; got norm({w}) = "
                                     f"{describe(layer)}, without {', '.join(missing)}")
        self.weights, self.biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            std = init_scale / np.sqrt(fan_in)
            self.weights.append((std * rng.standard_normal((fan_in, fan_out))).astype(self.dtype))
            norm_before = i < n_hidden and self.norms[i] is not None and norm_position == "before"
            self.biases.append(None if norm_before else np.zeros(fan_out, self.dtype))
        self.pre_activations: list = []
        self.activations: list = []
        self._inputs: list = []  # the input of each dense layer in the last forward
        self._dweights: list = [None] * len(self.weights)
        self._dbiases: list = [None] * len(self.weights)

    @property
    def n_classes(self) -> int:
        """Width of the output layer (the number of classes)."""
        return self.sizes[-1]

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers."""
        return len(self.sizes) - 2

    def _has_norms(self) -> bool:
        return any(n is not None for n in self.norms)

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        """x as a finite (N, sizes[0]) array of the model's dtype."""
        x = as_float_array(name, x)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} must have shape (N, {self.sizes[0]}), one row of "
                             f"{self.sizes[0]} inputs per example; got {x.shape}")
        return np.asarray(x, dtype=self.dtype)

    def forward(self, x, *, training: bool) -> np.ndarray:
        """Logits for a batch.

        Parameters
        ----------
        x : array_like of shape (N, sizes[0])
            Finite values; lists and integers are accepted. In training mode
            with normalization layers, N >= 1. (A batch-norm layer normalizes a
            training batch of one example to beta: every example then gets the
            same logits, which lesson 05 shows; :func:`train` refuses
            ``batch_size=1`` for such a model.)
        training : bool
            Passed to the normalization layers: True uses (and updates) batch
            statistics, False uses the moving statistics.

        Returns
        -------
        ndarray of shape (N, sizes[-1])
            Not checked: a diverged model can give non-finite logits, which
            :func:`softmax_cross_entropy` and :func:`accuracy` refuse.
        """
        training = check_bool("training", training)
        h = self._check_x(x)
        if training and h.shape[0] == 0 and self._has_norms():
            raise ValueError(f"x must hold at least one example in training mode (the "
                             f"normalization layers need batch statistics); got shape {h.shape}")
        return self._forward(h, training)

    def _forward(self, h: np.ndarray, training: bool) -> np.ndarray:
        """:meth:`forward` without the checks: h is a finite (N, sizes[0]) array of self.dtype."""
        self._inputs, self.pre_activations, self.activations = [], [], []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            self._inputs.append(h)
            z = h @ W
            if b is not None:
                z = z + b
            if i == self.n_hidden:
                return z
            norm = self.norms[i]
            if norm is not None and self.norm_position == "before":
                z = norm(z, training=training)
            a = _activate(self.activation, z)
            self.pre_activations.append(z)
            self.activations.append(a)
            out = norm(a, training=training) if (norm is not None
                                                 and self.norm_position == "after") else a
            h = h + out if self.skips[i] else out
        raise AssertionError("unreachable")

    def backward(self, dlogits, *, input_grad: bool = True):
        """Backpropagate dL/dlogits through the last forward pass; store every gradient.

        Parameters
        ----------
        dlogits : array_like of shape (N, sizes[-1])
            Finite, N the batch size of the last forward pass.
        input_grad : bool
            False skips dL/dx (training does not need it, and it costs a matrix
            product per step).

        Returns
        -------
        ndarray of shape (N, sizes[0]), dL/dx; None with ``input_grad=False``.
        """
        if not self._inputs:
            raise ValueError("backward must follow a forward call (it uses that call's "
                             "values); got no forward call yet")
        input_grad = check_bool("input_grad", input_grad)
        d = as_float_array("dlogits", dlogits)
        expected = (self._inputs[0].shape[0], self.sizes[-1])
        if d.shape != expected:
            raise ValueError(f"dlogits must have shape {expected}, the logits of the last "
                             f"forward call; got {d.shape}")
        return self._backward(d, input_grad)

    def _backward(self, dlogits, input_grad: bool):
        """:meth:`backward` without the checks."""
        d = np.asarray(dlogits, dtype=self.dtype)
        for i in range(len(self.weights) - 1, -1, -1):
            skip = d if i < self.n_hidden and self.skips[i] else None
            if i < self.n_hidden:
                norm = self.norms[i]
                if norm is not None and self.norm_position == "after":
                    d = norm.backward(d)
                d = _activation_grad(self.activation, self.pre_activations[i],
                                     self.activations[i], d)
                if norm is not None and self.norm_position == "before":
                    d = norm.backward(d)
            self._dweights[i] = self._inputs[i].T @ d
            self._dbiases[i] = None if self.biases[i] is None else d.sum(axis=0)
            if i == 0 and not input_grad:
                return None
            d = d @ self.weights[i].T
            if skip is not None:
                d = d + skip
        return d

    def _entries(self):
        """(name, parameter, gradient) for every trainable array, in a fixed order."""
        out = []
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            out.append((f"W{i + 1}", W, self._dweights[i]))
            if b is not None:
                out.append((f"b{i + 1}", b, self._dbiases[i]))
            if i < self.n_hidden and self.norms[i] is not None:
                norm = self.norms[i]
                out.append((f"gamma{i + 1}", norm.gamma, norm.dgamma))
                out.append((f"beta{i + 1}", norm.beta, norm.dbeta))
        return out

    def state(self) -> dict:
        """A copy of everything training changes, for :meth:`load_state`.

        Returns
        -------
        dict
            ``"weights"``: list of (sizes[i], sizes[i + 1]) arrays; ``"biases"``:
            list of arrays or None; ``"norms"``: one entry per hidden layer, None
            without normalization, else a dict of copies of the layer's
            ``gamma``, ``beta`` and, if it has them, ``moving_mean`` and
            ``moving_variance``. Every array is a copy: later training does not
            change the state. A layer that carries more state (a batch norm
            inside it, the random generator of a dropout layer) can offer its
            own ``state()`` and ``load_state(state)`` methods: its entry is then
            a deep copy of what its ``state()`` returns, and :meth:`load_state`
            hands that back to it.
        """
        norms = []
        for norm in self.norms:
            if norm is None:
                norms.append(None)
                continue
            if _has_own_state(norm):
                norms.append(copy.deepcopy(norm.state()))
                continue
            norms.append({name: np.array(getattr(norm, name), copy=True) for name in _NORM_STATE
                          if getattr(norm, name, None) is not None})
        return {"weights": [W.copy() for W in self.weights],
                "biases": [None if b is None else b.copy() for b in self.biases],
                "norms": norms}

    def load_state(self, state: dict) -> None:
        """Put the model back in a state from :meth:`state`.

        Weights, biases, gamma and beta are overwritten in place (code holding
        them sees the restored values); the moving statistics are replaced by
        copies of the saved ones (the saved state stays reusable). The state
        must come from a model of the same architecture, and hold finite values.
        A layer with its own ``state``/``load_state`` gets a copy of its entry;
        its ``load_state`` should raise ``ValueError`` on an entry it cannot take.
        """
        if not (isinstance(state, Mapping) and all(k in state for k in _STATE_KEYS)):
            raise ValueError(f"state must be a dict from MLP.state(), with keys {_STATE_KEYS}; "
                             f"got {describe(state)}")
        saved = list(zip(state["weights"], state["biases"]))
        if len(saved) != len(self.weights) or len(state["norms"]) != len(self.norms):
            raise ValueError(f"state must come from a model of this architecture, with "
                             f"{len(self.weights)} dense layers and {len(self.norms)} norm "
                             f"layers; got {len(saved)} and {len(state['norms'])}")
        for i, ((W, b), (W_saved, b_saved)) in enumerate(zip(zip(self.weights, self.biases),
                                                             saved)):
            _check_saved(f"W{i + 1}", W, W_saved)
            if (b is None) != (b_saved is None):
                raise ValueError(f"state must match the model on whether layer {i + 1} has a "
                                 f"bias; got {'none' if b_saved is None else 'a bias'}")
            if b is not None:
                _check_saved(f"b{i + 1}", b, b_saved)
        for i, (norm, norm_saved) in enumerate(zip(self.norms, state["norms"]), start=1):
            if (norm is None) != (norm_saved is None):
                raise ValueError(f"state must match the model on whether hidden layer {i} is "
                                 f"normalized; got {describe(norm_saved)}")
            if norm is not None and _has_own_state(norm):
                continue        # the layer's own load_state checks its entry
            if norm is not None:
                for name, value in norm_saved.items():
                    if name in ("gamma", "beta"):
                        _check_saved(f"{name}{i}", getattr(norm, name), value)
                    else:
                        as_float_array(f"state {name}{i}", value)
        # Layers with their own state check their entries as they load them: load those
        # first, and put them back if one refuses, so a bad state leaves the model as it was.
        own = [(norm, entry) for norm, entry in zip(self.norms, state["norms"])
               if norm is not None and _has_own_state(norm)]
        backup = [copy.deepcopy(norm.state()) for norm, _ in own]
        try:
            for norm, entry in own:
                norm.load_state(copy.deepcopy(entry))
        except Exception:
            for (norm, _), before in zip(own, backup):
                norm.load_state(before)
            raise
        # Everything checked: now copy (a bad state leaves the model as it was).
        for (W, b), (W_saved, b_saved) in zip(zip(self.weights, self.biases), saved):
            W[...] = W_saved
            if b is not None:
                b[...] = b_saved
        for norm, norm_saved in zip(self.norms, state["norms"]):
            if norm is None:
                continue
            if _has_own_state(norm):
                continue        # loaded above
            for name, value in norm_saved.items():
                if name in ("gamma", "beta"):
                    getattr(norm, name)[...] = value
                else:
                    setattr(norm, name, np.array(value, copy=True))


_NORM_STATE = ("gamma", "beta", "moving_mean", "moving_variance")


def _has_own_state(layer) -> bool:
    """True if a norm layer saves and restores its own state (``state`` and ``load_state``)."""
    return callable(getattr(layer, "state", None)) and callable(getattr(layer, "load_state", None))
_STATE_KEYS = ("weights", "biases", "norms")


def _check_saved(name: str, target: np.ndarray, value) -> None:
    arr = as_float_array(f"state {name}", value)
    if arr.shape != target.shape:
        raise ValueError(f"state {name} must have the model's shape {target.shape}; got "
                         f"{arr.shape}")


# What train, accuracy and sgd_step use of a model: an MLP, or another model (cnn.CNN) that
# offers the same unchecked training protocol.
_PROTOCOL = ("_check_x", "_forward", "_backward", "_entries", "dtype", "n_classes", "norms")


def _check_model(model) -> None:
    if not isinstance(model, MLP) and not all(hasattr(model, a) for a in _PROTOCOL):
        raise ValueError(f"model must be a bnlib.nn.MLP (or a model with its training protocol: "
                         f"{', '.join(_PROTOCOL)}); got {describe(model)}")


@contextmanager
def restore_on_exit(model: MLP):
    """Context manager: the model's :meth:`MLP.state` is put back on exit, even after an error.

    Example
    -------
    >>> model = MLP((4, 3, 2), norm="batch")
    >>> with restore_on_exit(model):
    ...     _ = model.forward(np.ones((5, 4)), training=True)  # moves the moving mean
    >>> float(model.norms[0].moving_mean.max())
    0.0
    """
    _check_model(model)
    saved = model.state()
    try:
        yield model
    finally:
        model.load_state(saved)


def softmax_cross_entropy(logits, y):
    """Mean softmax cross-entropy loss and its gradient.

    Parameters
    ----------
    logits : array_like of shape (N, K)
        Finite, N >= 1 and K >= 1.
    y : array_like of int, shape (N,)
        Class labels in 0..K-1 (integers: not floats, not booleans).

    Returns
    -------
    loss : float
        mean over the batch of -log softmax(logits)[y].
    dlogits : ndarray of shape (N, K)
        (softmax(logits) - onehot(y)) / N.
    """
    logits = as_float_array("logits", logits)
    if logits.ndim != 2 or 0 in logits.shape:
        raise ValueError(f"logits must have shape (N, K) with N >= 1 examples and K >= 1 "
                         f"classes; got {logits.shape}")
    y = check_labels("y", y, *logits.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, dlogits = _softmax_cross_entropy(logits, y)
    if not np.isfinite(loss):
        raise ValueError("logits must differ by less than the float range within each row (the "
                         "loss of a label whose logit is 1e308 below the largest overflows); "
                         f"got a loss of {loss}")
    return loss, dlogits


def _softmax_cross_entropy(logits: np.ndarray, y: np.ndarray):
    """:func:`softmax_cross_entropy` without the checks."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_z - shifted[rows, y]))
    probs = np.exp(shifted - log_z[:, None])
    probs[rows, y] -= 1.0
    return loss, probs / n


def accuracy(model: MLP, x, y) -> float:
    """Fraction of examples whose largest logit is the label (inference mode).

    Parameters
    ----------
    model : MLP
    x : array_like of shape (N, sizes[0]), N >= 1
    y : array_like of int, shape (N,), labels in 0..sizes[-1]-1

    Raises
    ------
    ValueError
        For bad arguments, and if the model's logits are NaN (its weights have
        diverged): such a model has no accuracy.
    """
    _check_model(model)
    x = model._check_x(x)
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example; got shape {x.shape}")
    y = check_labels("y", y, x.shape[0], model.n_classes)
    with np.errstate(over="ignore", invalid="ignore"):
        logits = model._forward(x, False)
    nan_rows = int(np.count_nonzero(np.isnan(logits).any(axis=1)))
    if nan_rows:
        raise ValueError(f"model must give logits that are numbers to be scored; got NaN logits "
                         f"for {nan_rows} of {len(x)} examples (its weights have diverged)")
    return float(np.mean(np.argmax(logits, axis=1) == y))


def _accuracy(model: MLP, x, y) -> float:
    """:func:`accuracy` without the checks (NaN logits count as wrong or right by argmax)."""
    with np.errstate(over="ignore", invalid="ignore"):
        logits = model._forward(np.asarray(x, dtype=model.dtype), False)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(y)))


def sgd_step(model: MLP, lr: float) -> None:
    """One plain gradient-descent update, in place: p -= lr * grad, for every parameter.

    ``lr`` must be a finite number > 0; the model must have gradients (call
    :meth:`MLP.backward` first).
    """
    _check_model(model)
    lr = check_real("lr", lr, minimum=0, open_min=True, hint=", e.g. 0.1")
    entries = model._entries()
    for name, _, g in entries:
        if g is None:
            raise ValueError(f"model must have gradients from model.backward before sgd_step; "
                             f"got none yet for {name}")
    _sgd_step(model, lr, entries)


def _sgd_step(model: MLP, lr: float, entries=None) -> None:
    for _, p, g in model._entries() if entries is None else entries:
        p -= lr * g


@dataclass
class History:
    """What :func:`train` recorded.

    Attributes
    ----------
    step : ndarray of int, shape (n_steps,)
        1, 2, ... for each completed SGD step.
    loss : ndarray of shape (n_steps,)
        The minibatch training loss of each step (before its update).
    eval_step : ndarray of int, shape (n_evals,)
        Steps at which the model was evaluated: 0 (before training), every
        ``eval_every`` steps, and the last step.
    test_accuracy : ndarray of shape (n_evals,)
    recorded : dict of name -> ndarray of shape (n_evals,)
        The values returned by ``record`` at each evaluation.
    diverged : bool
        True if training stopped because the loss became non-finite.
    """

    step: np.ndarray
    loss: np.ndarray
    eval_step: np.ndarray
    test_accuracy: np.ndarray
    recorded: dict = field(default_factory=dict)
    diverged: bool = False

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the last evaluation (0 if training diverged)."""
        return 0.0 if self.diverged else float(self.test_accuracy[-1])

    def accuracy_at(self, step: int) -> float:
        """Test accuracy at the first evaluation at or after ``step`` (0 if none: diverged)."""
        step = check_int("step", step, minimum=0)
        idx = np.searchsorted(self.eval_step, step, side="left")  # the first >= step
        return float(self.test_accuracy[idx]) if idx < len(self.eval_step) else 0.0


def _all_finite(model: MLP) -> bool:
    return all(np.isfinite(p).all() for p in model.params())


def batch_indices(n: int, steps: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """Minibatch indices for ``steps`` steps: epochs of seeded shuffles, concatenated.

    Parameters
    ----------
    n : int >= 1
        Number of training examples.
    steps : int >= 0
    batch_size : int in 1..n
    seed : int >= 0

    Returns
    -------
    ndarray of int, shape (steps, batch_size)
    """
    n = check_int("n", n, minimum=1, hint=" (the number of training examples)")
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1, maximum=n,
                           hint=" (at most the number of training examples)")
    check_seed("seed", seed)
    return _batch_indices(n, steps, batch_size, seed)


def _batch_indices(n: int, steps: int, batch_size: int, seed) -> np.ndarray:
    if steps == 0:
        return np.zeros((0, batch_size), dtype=np.int64)
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return order[:steps * batch_size].reshape(steps, batch_size)


def _check_split(split, model: MLP):
    """The four arrays of a train/test split, checked against the model."""
    names = ("x_train", "y_train", "x_test", "y_test")
    if not all(hasattr(split, name) for name in names):
        raise ValueError(f"split must have x_train, y_train, x_test and y_test (a "
                         f"bnlib.data.Split); got {describe(split)}")
    out = []
    for part in ("train", "test"):
        x = model._check_x(getattr(split, f"x_{part}"), f"split.x_{part}")
        if x.shape[0] == 0:
            raise ValueError(f"split.x_{part} must hold at least one example; got shape "
                             f"{x.shape}")
        y = check_labels(f"split.y_{part}", getattr(split, f"y_{part}"), x.shape[0],
                         model.n_classes)
        out += [x, y]
    return out


def _has_batch_statistics(model: MLP) -> bool:
    return any(isinstance(n, BatchNorm) for n in model.norms)


def train(model: MLP, split, *, steps: int, batch_size: int = 60, lr: float = 0.1,
          seed: int = 0, eval_every: int = 10,
          record: Callable[[MLP], dict] | None = None) -> History:
    """Train with minibatch SGD on softmax cross-entropy; evaluate on the test set.

    Parameters
    ----------
    model : MLP
        Trained in place.
    split : bnlib.data.Split
        x_train (N, D), y_train (N,), x_test, y_test: finite inputs with
        D = model.sizes[0], integer labels in 0..model.sizes[-1]-1.
    steps : int >= 0
        Number of SGD steps.
    batch_size : int in 1..N
        At least 2 for a model with batch norm (a batch of one is normalized
        to beta, and no gradient reaches the layers below).
    lr : float > 0
        Learning rate.
    seed : int >= 0
        Seed of the minibatch order.
    eval_every : int >= 1
        Evaluate test accuracy (and call ``record``) every this many steps,
        plus before the first step and after the last.
    record : callable, optional
        ``record(model) -> dict of name -> float``, called at each evaluation,
        e.g. percentiles of one unit's pre-activation on a fixed batch. Run the
        model in inference mode there (``training=False``), so the recording
        does not update the moving statistics.

    Returns
    -------
    History

    Notes
    -----
    The arguments are checked once, here; the steps run unchecked.
    ``diverged`` flags only a non-finite loss (or non-finite weights). With
    bounded activations and the stable softmax, a too-large learning rate
    more often leaves the loss finite but stuck near chance (ln 10 for 10
    classes): judge "trains or not" by the test accuracy.
    """
    _check_model(model)
    x_train, y_train, x_test, y_test = _check_split(split, model)
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1, maximum=len(x_train),
                           hint=f" (at most the {len(x_train)} training examples)")
    if batch_size < 2 and _has_batch_statistics(model):
        raise ValueError("batch_size must be at least 2 for a model with batch norm (a batch of "
                         "one is normalized to beta, and no gradient reaches the layers "
                         "below); got 1")
    lr = check_real("lr", lr, minimum=0, open_min=True, hint=", e.g. 0.1")
    check_seed("seed", seed)
    eval_every = check_int("eval_every", eval_every, minimum=1)
    if record is not None and not callable(record):
        raise ValueError(f"record must be None or a function record(model) -> dict; got "
                         f"{describe(record)}")
    idx = _batch_indices(len(x_train), steps, batch_size, seed)
    with threadpool_limits(1, user_api="blas"):
        return _train_loop(model, (x_train, y_train, x_test, y_test), idx, lr, eval_every,
                           record)


def _recorded_values(values) -> dict:
    if not isinstance(values, Mapping):
        raise ValueError(f"record must return a dict of name -> number; got {describe(values)}")
    out = {}
    for name, value in values.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"record must return a dict of name -> number; got {name!r}: "
                             f"{describe(value)}") from None
    return out


def _train_loop(model, arrays, idx, lr, eval_every, record) -> History:
    """The SGD steps of :func:`train`, unchecked: ``arrays`` are the checked split."""
    x_train, y_train, x_test, y_test = arrays
    steps = len(idx)
    losses = np.empty(steps)
    eval_steps, accs, recorded = [], [], {}

    def evaluate(step):
        eval_steps.append(step)
        accs.append(_accuracy(model, x_test, y_test))
        if record is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                values = _recorded_values(record(model))
            for name, value in values.items():
                recorded.setdefault(name, []).append(value)

    evaluate(0)
    done, diverged = 0, False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for t in range(steps):
            rows = idx[t]
            try:
                logits = model._forward(x_train[rows], True)
            except ValueError:  # a norm layer refuses non-finite input: weights blew up
                if _all_finite(model):
                    raise
                diverged = True
                break
            loss, dlogits = _softmax_cross_entropy(logits, y_train[rows])
            losses[t] = loss
            done = t + 1
            if not np.isfinite(loss):
                diverged = True
                break
            model._backward(dlogits, False)
            _sgd_step(model, lr)
            if done % eval_every == 0 or done == steps:
                if not _all_finite(model):
                    diverged = True
                    break
                evaluate(done)
    return History(step=np.arange(1, done + 1), loss=losses[:done], eval_step=np.array(eval_steps),
                   test_accuracy=np.array(accs),
                   recorded={k: np.array(v) for k, v in recorded.items()}, diverged=diverged)
