"""Lesson 06 part 2: internal covariate shift, "noisy" batch norm and loss-surface smoothness.

Built on :mod:`bnlib.nn` without changing it: :class:`NoisyBatchNorm` is a
batch-norm layer for ``nn.MLP(norm=...)`` that shifts and rescales its output
at random every training step, and the measurements read a model's hidden
pre-activations or step along its gradient, then put every parameter and
moving statistic back as it was.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from threadpoolctl import threadpool_limits

from bnlib import data, nn

QUANTILES = (15.0, 50.0, 85.0)
SIZES = (64, 100, 100, 100, 10)  # three hidden layers of 100, as in Ioffe & Szegedy, Fig. 1


class NoisyBatchNorm(nn.FastBatchNorm):
    """Batch norm whose training output is deliberately shifted, rescaled and jittered.

    At every training call, each unit j draws a fresh offset ``m_j ~ U(-mean_range, mean_range)``,
    scale ``c_j ~ U(1/scale_range, scale_range)`` (log-uniform) and noise level
    ``v_j ~ U(0, noise_std)``; the output is ``c_j * bn(x)_ij + m_j + v_j * e_ij``
    with e standard normal per example. So the next layer's inputs have a
    different mean and spread at every step. Inference mode adds nothing.

    Parameters
    ----------
    width : int
    mean_range, scale_range, noise_std : float
    seed : int
    momentum, eps : float
        As in :class:`bnlib.batchnorm.BatchNorm`.
    """

    def __init__(self, width: int, *, mean_range: float = 1.0, scale_range: float = 2.0,
                 noise_std: float = 0.5, seed: int = 0, momentum: float = 0.99,
                 eps: float = 1e-3):
        super().__init__(width, momentum=momentum, eps=eps)
        self.mean_range, self.scale_range, self.noise_std = mean_range, scale_range, noise_std
        self.rng = np.random.default_rng(seed)
        self._scale = None

    def __call__(self, x, *, training: bool) -> np.ndarray:
        out = super().__call__(x, training=training)
        if not training:
            self._scale = None
            return out
        width = out.shape[1]
        offset = self.rng.uniform(-self.mean_range, self.mean_range, width)
        log_r = np.log(self.scale_range)
        self._scale = np.exp(self.rng.uniform(-log_r, log_r, width))
        level = self.rng.uniform(0.0, self.noise_std, width)
        return self._scale * out + offset + level * self.rng.standard_normal(out.shape)

    def backward(self, dout) -> np.ndarray:
        # Offset and noise do not depend on x, gamma or beta; the scale multiplies dout.
        return super().backward(dout if self._scale is None else dout * self._scale)


def noisy_norm_factory(seed: int = 0, **options):
    """A ``make_norm(width)`` for ``nn.MLP(norm=...)``: one NoisyBatchNorm per layer, own seeds."""
    counter = iter(range(10**6))
    return lambda width: NoisyBatchNorm(width, seed=seed * 1000 + next(counter), **options)


def make_model(norm: str, *, seed: int = 0, sizes=SIZES, activation: str = "sigmoid") -> nn.MLP:
    """An MLP with ``norm`` in {"none", "batch", "noisy"} (normalization before the activation)."""
    choice = {"none": None, "batch": "batch", "noisy": noisy_norm_factory(seed)}[norm]
    return nn.MLP(sizes, activation=activation, norm=choice, seed=seed)


class _Saved:
    """Context manager: restore every parameter and moving statistic of a model on exit."""

    def __init__(self, model: nn.MLP):
        self.model = model

    def __enter__(self):
        self.params = [p.copy() for p in self.model.params()]
        self.stats = [(n.moving_mean.copy(), n.moving_variance.copy())
                      for n in self.model.norms if n is not None]
        return self

    def __exit__(self, *exc):
        for p, saved in zip(self.model.params(), self.params):
            p[...] = saved
        for n, (mean, var) in zip([n for n in self.model.norms if n is not None], self.stats):
            n.moving_mean, n.moving_variance = mean, var
        return False


def layer_input_quantiles(model: nn.MLP, x, layer: int = -1, q=QUANTILES) -> np.ndarray:
    """Percentiles of each unit's activation input in hidden ``layer``, in training mode.

    Training mode is what the layer meets while it learns (batch statistics,
    and the noise of a noisy layer); the moving statistics are restored after.

    Parameters
    ----------
    model : nn.MLP
    x : ndarray of shape (N, D)
    layer : int
        Index into the hidden layers (-1: the last).

    Returns
    -------
    ndarray of shape (len(q), width)
    """
    with _Saved(model):
        model.forward(x, training=True)
        return np.percentile(model.pre_activations[layer], q, axis=0)


def movement(quantiles) -> dict:
    """How far a layer's input distribution moves over training, averaged over units.

    Parameters
    ----------
    quantiles : ndarray of shape (n_records, 3, width)
        The 15th, 50th and 85th percentiles of each unit at each record.

    Returns
    -------
    dict with ``"total"``: mean over units and percentiles of |Q(end) - Q(start)|;
    ``"per_step"``: the same between consecutive records, averaged over records;
    ``"path"``: shape (n_records,), distance from the start at each record. All
    in the units of the activation's input (a sigmoid's shape is fixed, so one
    unit of input means the same to every layer).
    """
    quantiles = np.asarray(quantiles, float)
    path = np.abs(quantiles - quantiles[0]).mean(axis=(1, 2))
    steps = np.abs(np.diff(quantiles, axis=0)).mean(axis=(1, 2))
    return {"total": float(path[-1]), "per_step": float(steps.mean()), "path": path}


@lru_cache(maxsize=32)
def shift_run(norm: str, *, steps: int = 600, lr: float = 1.0, seed: int = 0,
              eval_every: int = 25, n_probe: int = 250) -> dict:
    """Train a 3x100 sigmoid net on the digits, recording percentiles of a deep layer's input.

    Returns
    -------
    dict with ``"history"`` (nn.History), ``"quantiles"`` of shape
    (n_evals, 3, 100) and ``"movement"`` (see :func:`movement`).
    """
    split = data.digits()
    probe = split.x_train[:n_probe]
    model = make_model(norm, seed=seed)
    records = []

    def record(m):
        records.append(layer_input_quantiles(m, probe))
        return {}

    history = nn.train(model, split, steps=steps, lr=lr, seed=seed, eval_every=eval_every,
                       record=record)
    quantiles = np.array(records)
    return {"history": history, "quantiles": quantiles, "movement": movement(quantiles)}


@lru_cache(maxsize=32)
def accuracy_runs(norm: str, *, seeds=(0, 1, 2), steps: int = 600, lr: float = 1.0,
                  at: int = 300, activation: str = "sigmoid") -> dict:
    """Test accuracy after ``at`` steps and at the end, for several seeds (3 x 100 hidden units).

    Returns
    -------
    dict with ``"early"`` and ``"final"``: ndarrays of shape (len(seeds),).
    """
    split = data.digits()
    early, final = [], []
    for seed in seeds:
        h = nn.train(make_model(norm, seed=seed, activation=activation), split, steps=steps,
                     lr=lr, seed=seed, eval_every=at)
        early.append(h.accuracy_at(at))
        final.append(h.final_accuracy)
    return {"early": np.array(early), "final": np.array(final)}


def compounding_shift(norm: str, *, depth: int = 8, width: int = 64, change: float = 0.1,
                      activation: str = "tanh", seed: int = 0, n_probe: int = 500) -> np.ndarray:
    """Nudge every layer's weights at once and measure how far each hidden layer's input moves.

    Every weight matrix gets Gaussian noise of ``change`` times its own
    standard deviation (as if all layers took one update together). The
    shift of hidden layer l is the mean over units and percentiles of
    |Q_after - Q_before| / (Q85_before - Q15_before): how far the layer's
    input distribution moved, in units of its own width.

    Returns
    -------
    ndarray of shape (depth,), the shift of hidden layers 1..depth.
    """
    x = data.digits().x_train[:n_probe]
    model = make_model(norm, seed=seed, sizes=(64,) + (width,) * depth + (10,),
                       activation=activation)
    rng = np.random.default_rng(seed + 1)
    with threadpool_limits(1, user_api="blas"):
        before = [layer_input_quantiles(model, x, layer=l) for l in range(depth)]
        for W in model.weights:
            W += change * W.std() * rng.standard_normal(W.shape)
        after = [layer_input_quantiles(model, x, layer=l) for l in range(depth)]
    return np.array([np.mean(np.abs(a - b) / (b[2] - b[0])) for a, b in zip(after, before)])


def landscape_probe(model: nn.MLP, x, y, lr: float, multipliers=(0.5, 1.0, 2.0, 4.0)) -> dict:
    """Step along the negative gradient and see how much loss and gradient change.

    From the current parameters theta with gradient g (loss on (x, y), training
    mode), evaluate the loss and gradient at theta - k * lr * g for each k.
    The model is restored afterwards.

    Returns
    -------
    dict with ``"loss_range"`` (max - min of the loss over k = 0 and the
    multipliers), ``"grad_change"`` (max over k of ||g_k - g||) and
    ``"grad_norm"`` (||g||).
    """
    def loss_and_grad():
        loss, dlogits = nn.softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(dlogits)
        return loss, [g.copy() for g in model.grads()]

    with _Saved(model) as saved:
        loss0, g0 = loss_and_grad()
        losses, changes, betas = [loss0], [], []
        for k in multipliers:
            for p, p0, g in zip(model.params(), saved.params, g0):
                p[...] = p0 - k * lr * g
            loss_k, g_k = loss_and_grad()
            losses.append(loss_k)
            changes.append(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(g_k, g0))))
            betas.append(changes[-1] / (k * lr))
    norm = np.sqrt(sum(np.sum(g * g) for g in g0))
    return {"loss_range": float(np.ptp(losses)), "grad_change": float(max(changes)),
            "grad_norm": float(norm), "beta": float(max(betas) / norm)}


@lru_cache(maxsize=32)
def landscape_run(norm: str, *, lr: float = 0.5, steps: int = 200, seed: int = 0,
                  every: int = 10, n_probe: int = 250, activation: str = "relu") -> dict:
    """Train and probe the loss surface along the gradient every ``every`` steps.

    Returns
    -------
    dict with ``"history"`` and arrays (one value per probe) ``"loss_range"``,
    ``"grad_change"``, ``"grad_norm"``.
    """
    split = data.digits()
    x, y = split.x_train[:n_probe], split.y_train[:n_probe]
    model = make_model(norm, seed=seed, activation=activation)
    history = nn.train(model, split, steps=steps, lr=lr, seed=seed, eval_every=every,
                       record=lambda m: landscape_probe(m, x, y, lr))
    return {"history": history, **history.recorded}
