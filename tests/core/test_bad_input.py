"""Every public function of the core against bad input and extreme values.

The contract: a bad argument raises a ``ValueError`` whose message names it,
says what was expected and what was given (``"<arg> must ...; got ..."``);
valid input, however extreme (integers, lists, float16, values near the
dtype's limits, a single image), gives a correct result. Never a silent NaN.

Each case is one call. ``bad(...)`` cases name the argument the message must
start with; ``good(...)`` cases check the result against plain NumPy in
float64. ``batchnorm_fast`` is left out on purpose: it is the unchecked fast
path (its contract is in its docstring); :mod:`bnlib.nn` checks its input.
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple

import numpy as np
import pytest

from bnlib import batchnorm, data, ema, gradcheck, layernorm, nn, normalize


class Case(NamedTuple):
    id: str
    call: Callable[[], object]
    arg: str | None                    # bad input: the argument the ValueError must name
    check: Callable[[object], None] | None  # valid input: asserts the result is correct


CASES: list[Case] = []


def bad(id_: str, arg: str, call) -> None:
    CASES.append(Case(id_, call, arg, None))


def good(id_: str, call, check) -> None:
    CASES.append(Case(id_, call, None, check))


def is_clear(message: str, arg: str) -> bool:
    """The message names ``arg`` first, then says what it must be and what it got."""
    return re.match(rf"{re.escape(arg)}\b.*\bmust\b.*\bgot\b", message, re.S) is not None


# ---------------------------------------------------------------- shared values
RNG = np.random.default_rng(0)
X = RNG.normal(0.5, 2.0, (8, 3))
IMG = RNG.normal(size=(2, 3, 3, 4))
ONES, ZEROS = np.ones(3), np.zeros(3)
NAN, INF = np.nan, np.inf


def with_entry(a, value, index=1):
    out = np.array(a, dtype=np.float64, copy=True)
    out.flat[index] = value
    return out


BAD_NUMBERS = [("None", None), ("str", "0.1"), ("list", [0.1]), ("nan", NAN), ("inf", INF),
               ("-inf", -INF), ("bool", True), ("complex", 0.5j)]
BAD_INTS = [("None", None), ("str", "3"), ("float", 2.5), ("nan", NAN), ("bool", True),
            ("list", [3])]


def bad_arrays(shape):
    """Values of the wrong kind for an array argument of ``shape``."""
    return [("None", None), ("str", "abc"), ("ragged", [[1.0, 2.0], [3.0]]),
            ("complex", np.ones(shape, complex)),
            ("object", np.full(shape, object(), dtype=object)),
            ("nan", with_entry(np.ones(shape), NAN)), ("inf", with_entry(np.ones(shape), INF)),
            ("-inf", with_entry(np.ones(shape), -INF))]


# ---------------------------------------------------------------- references (float64)
def ref_norm(x, axes, gamma=1.0, beta=0.0, eps=1e-3):
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def close(want, atol, rtol=0.0, dtype=None):
    """A check: the result (or its first element) is finite and within tolerance of want."""
    def check(result):
        got = result[0] if isinstance(result, tuple) else result
        got_arr = np.asarray(got)
        assert got_arr.shape == np.shape(want), f"shape {got_arr.shape} != {np.shape(want)}"
        if dtype is not None:
            assert got_arr.dtype == dtype, f"dtype {got_arr.dtype} != {dtype}"
        assert np.isfinite(got_arr).all(), "non-finite result"
        np.testing.assert_allclose(got_arr.astype(np.float64), want, atol=atol, rtol=rtol)
    return check


def that(predicate, what: str):
    """A check: ``predicate(result)`` holds (``what`` says what it checks)."""
    def check(result):
        assert predicate(result), f"expected {what}; got {result!r}"
    return check


def shaped(shape, dtype=np.float64):
    """A check: a finite array of this shape and dtype."""
    return that(lambda r: np.shape(r) == shape and np.asarray(r).dtype == dtype
                and np.isfinite(r).all(), f"a finite {np.dtype(dtype).name} array of shape {shape}")


def all_finite(result):
    for part in (result if isinstance(result, tuple) else (result,)):
        if isinstance(part, np.ndarray):
            assert np.isfinite(part).all(), "non-finite result"


# ================================================================ normalize
for fn in ("min_max_scale", "standardize"):
    f = getattr(normalize, fn)
    for label, value in bad_arrays((4, 3)):
        bad(f"{fn} x={label}", "x", lambda f=f, v=value: f(v))
    bad(f"{fn} x=scalar", "x", lambda f=f: f(3.0))
    bad(f"{fn} x=empty", "x", lambda f=f: f(np.zeros((0, 3))))
    bad(f"{fn} x=empty-1d", "x", lambda f=f: f([]))
    bad(f"{fn} x=constant column", "x", lambda f=f: f(with_entry(X, 0.0, 0) * [0, 1, 1]))
    for label, axis in [("2", 2), ("-3", -3), ("'0'", "0"), ("1.0", 1.0), ("(0, 0)", (0, 0)),
                        ("True", True), ("()", ())]:
        bad(f"{fn} axis={label}", "axis", lambda f=f, a=axis: f(X, axis=a))
    good(f"{fn} int list", lambda f=f: f([[1, 4], [3, 0], [2, 8]]),
         close(ref_norm([[1, 4], [3, 0], [2, 8]], 0, eps=0) if fn == "standardize"
               else np.array([[0, 0.5], [1, 0], [0.5, 1]]), atol=1e-12))
    good(f"{fn} axis=None", lambda f=f: f(X, axis=None), all_finite)
    good(f"{fn} axis=[0, 1] list", lambda f=f: f(IMG, axis=[0, 1]), all_finite)
    good(f"{fn} 1-D", lambda f=f: f(X[:, 0]), all_finite)

good("standardize float32 x1e30",
     lambda: normalize.standardize((X * 1e30).astype(np.float32)),
     close(ref_norm((X * 1e30).astype(np.float32), 0, eps=0), atol=1e-5, dtype=np.float32))
good("standardize float64 x1e200", lambda: normalize.standardize(X * 1e200),
     close(ref_norm(X, 0, eps=0), atol=1e-12))
good("standardize float16 spread 2e4",
     lambda: normalize.standardize((X * 1e4).astype(np.float16)),
     close(ref_norm((X * 1e4).astype(np.float16), 0, eps=0), atol=5e-3, dtype=np.float16))
good("min_max_scale float32 +-3e38",
     lambda: normalize.min_max_scale(np.array([[-3e38], [0.0], [3e38]], np.float32)),
     close(np.array([[0.0], [0.5], [1.0]]), atol=1e-6, dtype=np.float32))
good("min_max_scale float64 +-1.7e308",
     lambda: normalize.min_max_scale(np.array([[-1.7e308], [1.7e308]])),
     close(np.array([[0.0], [1.0]]), atol=1e-15))

_STD = normalize.standardize(X)[1]
_MM = normalize.min_max_scale(X)[1]
for fn, stats, names in (("apply_standardize", _STD, ("mean", "std")),
                         ("apply_min_max", _MM, ("minimum", "maximum"))):
    f = getattr(normalize, fn)
    bad(f"{fn} stats=None", "stats", lambda f=f: f(X, None))
    bad(f"{fn} stats=3-tuple", "stats", lambda f=f, s=stats: f(X, (*s, s[0])))
    bad(f"{fn} stats=dict", "stats", lambda f=f: f(X, {"a": 1}))
    for i, name in enumerate(names):
        for label, value in [("nan", with_entry(stats[i], NAN)), ("inf", with_entry(stats[i], INF)),
                             ("wrong shape", np.ones((1, 5))), ("str", "abc")]:
            s = list(stats)
            s[i] = value
            bad(f"{fn} stats.{name}={label}", f"stats.{name}", lambda f=f, s=tuple(s): f(X, s))
    for label, value in bad_arrays((4, 3)):
        bad(f"{fn} x={label}", "x", lambda f=f, v=value, s=stats: f(v, s))
    good(f"{fn} plain tuple", lambda f=f, s=stats: f(X[:3], tuple(s)), all_finite)
    good(f"{fn} int list", lambda f=f, s=stats: f([[1, 2, 3]], s), all_finite)
bad("apply_standardize stats.std=0", "stats.std",
    lambda: normalize.apply_standardize(X, (_STD.mean, _STD.std * [0, 1, 1])))
bad("apply_standardize stats.std<0", "stats.std",
    lambda: normalize.apply_standardize(X, (_STD.mean, -_STD.std)))
bad("apply_min_max max=min", "stats.maximum",
    lambda: normalize.apply_min_max(X, (_MM.minimum, _MM.minimum)))
bad("apply_min_max max<min", "stats.maximum",
    lambda: normalize.apply_min_max(X, (_MM.maximum, _MM.minimum)))
bad("apply_standardize float32 overflow", "x",
    lambda: normalize.apply_standardize(np.float32([[3e38]]),
                                        (np.float32([[-3e38]]), np.float32([[1e-3]]))))

# ================================================================ ema
for fn in ("running_mean", "ema"):
    f = (lambda x: ema.running_mean(x)) if fn == "running_mean" else (lambda x: ema.ema(x, 0.1))
    for label, value in bad_arrays((5,)):
        bad(f"{fn} x={label}", "x", lambda f=f, v=value: f(v))
    bad(f"{fn} x=scalar", "x", lambda f=f: f(3.0))
    good(f"{fn} x=[]", lambda f=f: f([]), close(np.zeros(0), atol=0))
    good(f"{fn} x=(0, 3)", lambda f=f: f(np.zeros((0, 3))), close(np.zeros((0, 3)), atol=0))
    good(f"{fn} int list", lambda f=f: f([1, 2, 3]),
         close([1.0, 1.5, 2.0] if fn == "running_mean" else [0.1, 0.29, 0.561], atol=1e-12))
good("running_mean float32 near max",
     lambda: ema.running_mean(np.float32([3e38, 3e38, 3e38])),
     close(np.full(3, np.float32(3e38), np.float64), atol=0, rtol=1e-6))

for label, value in BAD_NUMBERS + [("0", 0.0), ("-0.1", -0.1), ("1.5", 1.5)]:
    bad(f"ema alpha={label}", "alpha", lambda v=value: ema.ema(X[:, 0], v))
    bad(f"ema_weights alpha={label}", "alpha", lambda v=value: ema.ema_weights(v, 5))
    bad(f"bias_correct alpha={label}", "alpha", lambda v=value: ema.bias_correct(X[:, 0], v))
    bad(f"effective_window alpha={label}", "alpha", lambda v=value: ema.effective_window(v))
for label, value in [("nan", NAN), ("inf", INF), ("None", None), ("str", "a"),
                     ("wrong shape", np.zeros(2)), ("float32 overflow", 1e39)]:
    bad(f"ema y0={label}", "y0",
        lambda v=value: ema.ema(np.ones((5, 3), np.float32), 0.5, y0=v))
good("ema y0 list", lambda: ema.ema(np.ones((2, 3)), 0.5, y0=[0, 1, 2]),
     close([[0.5, 1.0, 1.5], [0.75, 1.0, 1.25]], atol=1e-15))
good("ema alpha np.float32", lambda: ema.ema([1.0, 1.0], np.float32(0.5)),
     close([0.5, 0.75], atol=1e-15))
good("ema alpha 0-d array", lambda: ema.ema([1.0, 1.0], np.array(0.5)),
     close([0.5, 0.75], atol=1e-15))

for label, value in BAD_INTS + [("0", 0), ("-1", -1), ("1e12", 1e12), ("10**15", 10**15)]:
    bad(f"ema_weights t={label}", "t", lambda v=value: ema.ema_weights(0.1, v))
good("ema_weights t=np.int64", lambda: ema.ema_weights(0.5, np.int64(3)),
     close([0.5, 0.25, 0.125], atol=1e-15))
good("bias_correct alpha=1e-300", lambda: ema.bias_correct([1e-300, 2e-300], 1e-300),
     close([1.0, 1.0], atol=1e-12))
good("bias_correct alpha=1e-12", lambda: ema.bias_correct(ema.ema([3.0, 3.0], 1e-12), 1e-12),
     close([3.0, 3.0], atol=0, rtol=1e-9))
good("bias_correct alpha=1", lambda: ema.bias_correct([2.0, 5.0], 1.0),
     close([2.0, 5.0], atol=0))
bad("bias_correct overflow", "y", lambda: ema.bias_correct([1e10], 1e-300))
for label, value in bad_arrays((5,)):
    bad(f"bias_correct y={label}", "y", lambda v=value: ema.bias_correct(v, 0.1))

for label, value in BAD_NUMBERS + [("1", 1.0), ("-0.1", -0.1)]:
    bad(f"ema_update momentum={label}", "momentum", lambda v=value: ema.ema_update(1.0, 2.0, v))
for name in ("old", "new"):
    for label, value in [("nan", NAN), ("inf", INF), ("None", None), ("str", "a"),
                         ("nan entry", with_entry(ONES, NAN))]:
        args = {"old": ONES, "new": ONES, name: value}
        bad(f"ema_update {name}={label}", name,
            lambda a=args: ema.ema_update(a["old"], a["new"], 0.9))
bad("ema_update new broadcasts old up", "new", lambda: ema.ema_update(ONES, np.ones((2, 3)), 0.9))
bad("ema_update new wrong shape", "new", lambda: ema.ema_update(ONES, np.ones(2), 0.9))
good("ema_update floats", lambda: ema.ema_update(1.0, 2.0, 0.75), close(1.25, atol=1e-15))
good("ema_update lists", lambda: ema.ema_update([1, 2], [3, 4], 0.5), close([2.0, 3.0], atol=0))
good("ema_update scalar new", lambda: ema.ema_update(ONES, 3.0, 0.5), close(2 * ONES, atol=0))
good("ema_update near max", lambda: ema.ema_update(1.7e308, 1.7e308, 0.5),
     close(1.7e308, atol=0, rtol=1e-15))

for label, value in BAD_NUMBERS + [("-0.01", -0.01), ("1.5", 1.5)]:
    bad(f"convert_momentum value={label}", "value",
        lambda v=value: ema.convert_momentum(v, source="keras", target="pytorch"))
for name in ("source", "target"):
    for label, value in [("tf", "tensorflow"), ("None", None), ("3", 3), ("Keras", "Keras"),
                         ("list", ["keras"])]:
        kw = {"source": "keras", "target": "pytorch", name: value}
        bad(f"convert_momentum {name}={label}", name,
            lambda kw=kw: ema.convert_momentum(0.9, **kw))
good("convert_momentum np.float32", lambda: ema.convert_momentum(
    np.float32(0.25), source="pytorch", target="keras"), close(0.75, atol=1e-15))

# ================================================================ batchnorm
BN = dict(x=X, gamma=ONES, beta=ZEROS, moving_mean=ZEROS, moving_variance=ONES, training=True)


def bnf(**kw):
    args = {**BN, **kw}
    return batchnorm.batchnorm_forward(args.pop("x"), args.pop("gamma"), args.pop("beta"),
                                       args.pop("moving_mean"), args.pop("moving_variance"),
                                       **args)


for training in (True, False):
    mode = "training" if training else "inference"
    for label, value in bad_arrays((8, 3)):
        bad(f"batchnorm_forward {mode} x={label}", "x",
            lambda v=value, t=training: bnf(x=v, training=t))
    bad(f"batchnorm_forward {mode} x=1-D", "x", lambda t=training: bnf(x=X[0], training=t))
    bad(f"batchnorm_forward {mode} x=scalar", "x", lambda t=training: bnf(x=1.0, training=t))
    bad(f"batchnorm_forward {mode} x=(8, 0)", "x",
        lambda t=training: bnf(x=np.zeros((8, 0)), gamma=[], beta=[], moving_mean=[],
                               moving_variance=[], training=t))
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        for label, value in bad_arrays((3,)) + [("wrong shape", np.ones(4)),
                                                ("2-D", np.ones((1, 3))), ("empty", [])]:
            bad(f"batchnorm_forward {mode} {name}={label}", name,
                lambda n=name, v=value, t=training: bnf(**{n: v, "training": t}))
        bad(f"batchnorm_forward {mode} {name} beyond float32", name,
            lambda n=name, t=training: bnf(x=X.astype(np.float32), training=t,
                                           **{n: np.full(3, 1e39)}))
    bad(f"batchnorm_forward {mode} moving_variance<0", "moving_variance",
        lambda t=training: bnf(moving_variance=-ONES, training=t))
    for label, value in BAD_NUMBERS + [("0", 0.0), ("-1e-3", -1e-3)]:
        bad(f"batchnorm_forward {mode} eps={label}", "eps",
            lambda v=value, t=training: bnf(eps=v, training=t))
    for label, value in BAD_NUMBERS + [("1", 1.0), ("-0.1", -0.1), ("1.5", 1.5)]:
        bad(f"batchnorm_forward {mode} momentum={label}", "momentum",
            lambda v=value, t=training: bnf(momentum=v, training=t))
    for label, value in [("0", 0), ("-2", -2), ("2", 2), ("'0'", "0"), ("1.0", 1.0),
                         ("()", ()), ("None", None), ("True", True), ("(0, 1)", (0, 1))]:
        bad(f"batchnorm_forward {mode} axis={label}", "axis",
            lambda v=value, t=training: bnf(axis=v, training=t))
    bad(f"batchnorm_forward {mode} unbiased='yes'", "unbiased_moving_variance",
        lambda t=training: bnf(unbiased_moving_variance="yes", training=t))
    bad(f"batchnorm_forward {mode} gamma huge: output overflows", "x",
        lambda t=training: bnf(x=X.astype(np.float32), gamma=np.full(3, 3e38), training=t))
for label, value in [("None", None), ("'False'", "False"), ("1", 1), ("array", np.ones(2))]:
    bad(f"batchnorm_forward training={label}", "training", lambda v=value: bnf(training=v))
bad("batchnorm_forward training batch of 1", "x", lambda: bnf(x=X[:1]))
bad("batchnorm_forward training empty batch", "x", lambda: bnf(x=X[:0]))
bad("batchnorm_forward training one image per pixel", "x",
    lambda: bnf(x=IMG[:1], gamma=np.ones((3, 3, 4)), beta=np.zeros((3, 3, 4)),
                moving_mean=np.zeros((3, 3, 4)), moving_variance=np.ones((3, 3, 4)),
                axis=(1, 2, 3)))
bad("batchnorm_forward float32 x1e30 (moving variance overflows)", "x",
    lambda: bnf(x=(X * 1e30).astype(np.float32)))
bad("batchnorm_forward float16 spread 2e4 (moving variance overflows)", "x",
    lambda: bnf(x=(X * 1e4).astype(np.float16)))
bad("batchnorm_forward float64 x1e200 (variance overflows)", "x", lambda: bnf(x=X * 1e200))


def bn_check(x, axes=0, atol=1e-10, dtype=None, m=None):
    """Training output against the float64 reference, moving stats finite and correct."""
    def check(result):
        out, cache, mm, mv = result
        assert dtype is None or out.dtype == dtype, out.dtype
        x64 = np.asarray(x, np.float64)
        close(ref_norm(x64, axes), atol=atol)(out)
        want_mean = 0.01 * x64.mean(axis=axes).reshape(mm.shape)
        want_var = 0.99 + 0.01 * x64.var(axis=axes).reshape(mv.shape)
        np.testing.assert_allclose(mm, want_mean, rtol=1e-2 if dtype == np.float16 else 1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(mv, want_var, rtol=1e-2 if dtype == np.float16 else 1e-5)
    return check


_F16 = (X * 50).astype(np.float16)
_F32_FAR = (1e4 + 1e-2 * X).astype(np.float32)
_F32_FARTHER = (1e6 + X).astype(np.float32)
good("batchnorm_forward int list", lambda: bnf(x=[[1, 2, 3], [4, 6, 5], [7, 9, 9]]),
     bn_check([[1, 2, 3], [4, 6, 5], [7, 9, 9]]))
good("batchnorm_forward list parameters", lambda: bnf(gamma=[1, 1, 1], beta=[0, 0, 0],
                                                      moving_mean=[0, 0, 0],
                                                      moving_variance=[1, 1, 1]), bn_check(X))
good("batchnorm_forward float16 spread 100", lambda: bnf(x=_F16),
     bn_check(_F16, atol=4e-3, dtype=np.float16))
good("batchnorm_forward float32 offset 1e4 spread 1e-2", lambda: bnf(x=_F32_FAR),
     bn_check(_F32_FAR, atol=1e-5, dtype=np.float32))
good("batchnorm_forward float32 offset 1e6", lambda: bnf(x=_F32_FARTHER),
     bn_check(_F32_FARTHER, atol=1e-5, dtype=np.float32))
good("batchnorm_forward float32 x1e18", lambda: bnf(x=(X * 1e18).astype(np.float32)),
     bn_check((X * 1e18).astype(np.float32), atol=1e-5, dtype=np.float32))
good("batchnorm_forward batch of 2", lambda: bnf(x=X[:2]), bn_check(X[:2]))
good("batchnorm_forward one (1, H, W, C) image", lambda: bnf(
    x=IMG[:1], gamma=np.ones(4), beta=np.zeros(4), moving_mean=np.zeros(4),
    moving_variance=np.ones(4)), bn_check(IMG[:1], axes=(0, 1, 2)))
good("batchnorm_forward inference batch of 1", lambda: bnf(x=X[:1], training=False),
     close(X[:1] / np.sqrt(1 + 1e-3), atol=1e-12))
good("batchnorm_forward inference empty batch", lambda: bnf(x=X[:0], training=False),
     close(np.zeros((0, 3)), atol=0))
good("batchnorm_forward inference float32 x1e30", lambda: bnf(
    x=(X * 1e30).astype(np.float32), training=False),
     close((X * 1e30).astype(np.float32) / np.sqrt(1 + 1e-3), atol=0, rtol=1e-6))
good("batchnorm_forward eps np.float32, momentum 0-d array", lambda: bnf(
    eps=np.float32(1e-3), momentum=np.array(0.99)), bn_check(X, atol=1e-6))
good("batchnorm_forward axis=[-1] list", lambda: bnf(axis=[-1]), bn_check(X))
good("batchnorm_forward momentum 0", lambda: bnf(momentum=0.0), all_finite)
good("batchnorm_forward np.bool_ training", lambda: bnf(training=np.True_), bn_check(X))

_, CACHE, _, _ = bnf()
_, GN_CACHE = layernorm.group_norm_forward(X, ONES, ZEROS, 1)
for label, cache in [("None", None), ("GroupNormCache", GN_CACHE), ("tuple", tuple(CACHE)[:3]),
                     ("dict", {"x_hat": X}), ("FastCache", nn.batchnorm_forward_fast(
                         X, ONES, ZEROS, ZEROS, ONES, training=True)[1])]:
    bad(f"batchnorm_backward cache={label}", "cache",
        lambda c=cache: batchnorm.batchnorm_backward(X, c))
for label, value in bad_arrays((8, 3)) + [("wrong shape", np.ones((3, 8))),
                                          ("1-D", np.ones(3))]:
    bad(f"batchnorm_backward dout={label}", "dout",
        lambda v=value: batchnorm.batchnorm_backward(v, CACHE))
bad("batchnorm_backward float32 dout 1e38 (gradients overflow)", "dout",
    lambda: batchnorm.batchnorm_backward(np.full((8, 3), 1e38, np.float32),
                                         bnf(x=X.astype(np.float32))[1]))
good("batchnorm_backward int list dout", lambda: batchnorm.batchnorm_backward(
    np.ones((8, 3), int).tolist(), CACHE), close(np.zeros((8, 3)), atol=1e-12))


def _bn_grad_check(x):
    """dx of float16/float32 input against the float64 gradient of the same values."""
    dout = RNG.normal(size=np.shape(x))
    want = batchnorm.batchnorm_backward(dout, bnf(x=np.asarray(x, np.float64))[1])[0]
    return close(want, atol=2e-2 * np.abs(want).max()), dout


for label, x in [("float16", _F16), ("float32 offset 1e4", _F32_FAR)]:
    check, dout = _bn_grad_check(x)
    good(f"batchnorm_backward {label}", lambda x=x, d=dout: batchnorm.batchnorm_backward(
        d.astype(x.dtype), bnf(x=x)[1]), check)

for label, value in BAD_INTS[:-1] + [("0", 0), ("-1", -1), ("(3, 0)", (3, 0)), ("()", ()),
                                     ("(2.5,)", (2.5,)), ("['3']", ["3"])]:
    bad(f"BatchNorm shape={label}", "shape", lambda v=value: batchnorm.BatchNorm(v))
for label, value in [("nan", NAN), ("None", None), ("1", 1.0), ("str", "0.9")]:
    bad(f"BatchNorm momentum={label}", "momentum",
        lambda v=value: batchnorm.BatchNorm(3, momentum=v))
for label, value in [("0", 0.0), ("None", None), ("inf", INF), ("str", "1e-3")]:
    bad(f"BatchNorm eps={label}", "eps", lambda v=value: batchnorm.BatchNorm(3, eps=v))
for label, value in [("'0'", "0"), ("1.0", 1.0), ("None", None), ("True", True)]:
    bad(f"BatchNorm axis={label}", "axis", lambda v=value: batchnorm.BatchNorm(3, axis=v))
for label, value in [("int", int), ("'foo'", "foo"), ("complex", complex), ("object", object)]:
    bad(f"BatchNorm dtype={label}", "dtype", lambda v=value: batchnorm.BatchNorm(3, dtype=v))
bad("BatchNorm unbiased=1", "unbiased_moving_variance",
    lambda: batchnorm.BatchNorm(3, unbiased_moving_variance=1))
bad("BatchNorm() x with 4 features", "x",
    lambda: batchnorm.BatchNorm(3)(np.ones((5, 4)), training=True))
bad("BatchNorm() x=NaN", "x", lambda: batchnorm.BatchNorm(3)(with_entry(X, NAN), training=True))
bad("BatchNorm() training=None", "training", lambda: batchnorm.BatchNorm(3)(X, training=None))
bad("BatchNorm.backward before forward", "backward",
    lambda: batchnorm.BatchNorm(3).backward(X))
good("BatchNorm np.int64 shape", lambda: batchnorm.BatchNorm(np.int64(3))(X, training=True),
     close(ref_norm(X, 0), atol=1e-12))
good("BatchNorm list shape, float32", lambda: batchnorm.BatchNorm([3], dtype=np.float32)(
    X.astype(np.float32), training=True), close(ref_norm(X, 0), atol=1e-5))

FOLD = dict(W=np.ones((2, 3)), b=ZEROS, gamma=ONES, beta=ZEROS, moving_mean=ZEROS,
            moving_variance=ONES)


def fold(**kw):
    args = {**FOLD, **kw}
    eps = args.pop("eps", 1e-3)
    return batchnorm.fold_into_dense(*args.values(), eps=eps)


for label, value in bad_arrays((2, 3)) + [("1-D", np.ones(3))]:
    bad(f"fold_into_dense W={label}", "W", lambda v=value: fold(W=v))
for name in ("b", "gamma", "beta", "moving_mean", "moving_variance"):
    for label, value in [("nan", with_entry(ONES, NAN)), ("wrong shape", np.ones(2)),
                         ("str", "abc")]:
        bad(f"fold_into_dense {name}={label}", name, lambda n=name, v=value: fold(**{n: v}))
bad("fold_into_dense moving_variance<0", "moving_variance", lambda: fold(moving_variance=-ONES))
for label, value in [("0", 0.0), ("None", None), ("nan", NAN)]:
    bad(f"fold_into_dense eps={label}", "eps", lambda v=value: fold(eps=v))
bad("fold_into_dense overflow", "W", lambda: fold(W=np.full((2, 3), 1e300),
                                                   gamma=np.full(3, 1e300)))
good("fold_into_dense b=None, lists", lambda: fold(b=None, W=[[1, 2, 3], [4, 5, 6]]),
     close(np.array([[1, 2, 3], [4, 5, 6]]) / np.sqrt(1 + 1e-3), atol=1e-12))

# ================================================================ layernorm
GN = dict(x=np.ones((8, 4)) * np.arange(4), gamma=np.ones(4), beta=np.zeros(4), groups=2)
_X4 = RNG.normal(size=(8, 4))


def gnf(**kw):
    args = {"x": _X4, "gamma": np.ones(4), "beta": np.zeros(4), "groups": 2, **kw}
    return layernorm.group_norm_forward(args.pop("x"), args.pop("gamma"), args.pop("beta"),
                                        args.pop("groups"), **args)


for label, value in bad_arrays((8, 4)):
    bad(f"group_norm_forward x={label}", "x", lambda v=value: gnf(x=v))
    bad(f"layer_norm_forward x={label}", "x",
        lambda v=value: layernorm.layer_norm_forward(v, np.ones(4), np.zeros(4)))
bad("group_norm_forward x=1-D", "x", lambda: gnf(x=_X4[0]))
bad("group_norm_forward x=(8, 0)", "x", lambda: gnf(x=np.zeros((8, 0)), gamma=[], beta=[]))
bad("group_norm_forward one value per group", "x", lambda: gnf(groups=4))
bad("layer_norm_forward one channel", "x",
    lambda: layernorm.layer_norm_forward(_X4[:, :1], [1.0], [0.0]))
for label, value in BAD_INTS + [("0", 0), ("-1", -1), ("3 (no divisor)", 3), ("8", 8)]:
    bad(f"group_norm_forward groups={label}", "groups", lambda v=value: gnf(groups=v))
for name in ("gamma", "beta"):
    for label, value in bad_arrays((4,)) + [("wrong shape", np.ones(3))]:
        bad(f"group_norm_forward {name}={label}", name, lambda n=name, v=value: gnf(**{n: v}))
for label, value in BAD_NUMBERS + [("0", 0.0)]:
    bad(f"group_norm_forward eps={label}", "eps", lambda v=value: gnf(eps=v))
bad("group_norm_forward float64 x1e200 (variance overflows)", "x", lambda: gnf(x=_X4 * 1e200))
bad("group_norm_forward gamma huge: output overflows", "x",
    lambda: gnf(x=_X4.astype(np.float32), gamma=np.full(4, 3e38), beta=np.full(4, 3e38)))

_GX = RNG.normal(size=(6, 8))
_G_F32_FAR = (1e4 + 1e-2 * _GX).astype(np.float32)
_G_F32_FARTHER = (1e6 + _GX).astype(np.float32)
_G_F16 = (50 * _GX).astype(np.float16)


def gn_ref(x, groups):
    x64 = np.asarray(x, np.float64)
    n, c = x64.shape[0], x64.shape[-1]
    xg = x64.reshape(n, -1, groups, c // groups)
    return ref_norm(xg, (1, 3)).reshape(x64.shape)


for label, x, atol, groups in [("float32 offset 1e4 spread 1e-2", _G_F32_FAR, 1e-4, 2),
                               ("float32 offset 1e6", _G_F32_FARTHER, 1e-5, 2),
                               ("float32 x1e30", (_GX * 1e30).astype(np.float32), 1e-5, 2),
                               ("float16 spread 100", _G_F16, 4e-3, 2),
                               ("float16 spread 2e4", (_GX * 1e4).astype(np.float16), 4e-3, 2),
                               ("int list", [[1, 2, 4, 8], [3, 0, 0, 1]], 1e-12, 1)]:
    c = np.shape(x)[-1]
    good(f"group_norm_forward {label}",
         lambda x=x, g=groups, c=c: layernorm.group_norm_forward(x, np.ones(c), np.zeros(c), g),
         close(gn_ref(x, groups), atol=atol))
    good(f"layer_norm_forward {label}",
         lambda x=x, c=c: layernorm.layer_norm_forward(x, np.ones(c), np.zeros(c)),
         close(gn_ref(x, 1), atol=atol))
good("group_norm_forward empty batch", lambda: gnf(x=np.zeros((0, 4))),
     close(np.zeros((0, 4)), atol=0))
good("group_norm_forward instance norm on images", lambda: layernorm.group_norm_forward(
    IMG, np.ones(4), np.zeros(4), 4), close(gn_ref(IMG, 4), atol=1e-12))
good("group_norm_forward groups np.int64", lambda: gnf(groups=np.int64(2)),
     close(gn_ref(_X4, 2), atol=1e-12))

_, GCACHE = gnf()
for fn in ("group_norm_backward", "layer_norm_backward"):
    f = getattr(layernorm, fn)
    for label, cache in [("None", None), ("BatchNormCache", CACHE), ("tuple", tuple(GCACHE)[:2])]:
        bad(f"{fn} cache={label}", "cache", lambda f=f, c=cache: f(_X4, c))
    for label, value in bad_arrays((8, 4)) + [("wrong shape", np.ones((4, 8)))]:
        bad(f"{fn} dout={label}", "dout", lambda f=f, v=value: f(v, GCACHE))
good("group_norm_backward float16 finite", lambda: layernorm.group_norm_backward(
    RNG.normal(size=_G_F16.shape).astype(np.float16),
    layernorm.group_norm_forward(_G_F16, np.ones(8), np.zeros(8), 2)[1]), all_finite)

for label, value in BAD_INTS + [("0", 0), ("4 (no divisor)", 4), ("7", 7)]:
    bad(f"GroupNorm groups={label}", "groups", lambda v=value: layernorm.GroupNorm(6, v))
for label, value in BAD_INTS + [("0", 0), ("-4", -4)]:
    bad(f"GroupNorm channels={label}", "channels", lambda v=value: layernorm.GroupNorm(v, 1))
    bad(f"LayerNorm channels={label}", "channels", lambda v=value: layernorm.LayerNorm(v))
bad("GroupNorm(5, 2.5)", "groups", lambda: layernorm.GroupNorm(5, 2.5))
bad("GroupNorm eps=0", "eps", lambda: layernorm.GroupNorm(4, 2, eps=0.0))
bad("GroupNorm dtype=int", "dtype", lambda: layernorm.GroupNorm(4, 2, dtype=int))
bad("LayerNorm() x with 5 channels", "x",
    lambda: layernorm.LayerNorm(4)(np.ones((2, 5)), training=True))
bad("LayerNorm() x=1-D", "x", lambda: layernorm.LayerNorm(4)(np.ones(4), training=True))
bad("LayerNorm.backward before forward", "backward",
    lambda: layernorm.LayerNorm(4).backward(np.ones((2, 4))))
good("GroupNorm(4, 4) on images", lambda: layernorm.GroupNorm(4, 4)(IMG, training=False),
     close(gn_ref(IMG, 4), atol=1e-12))

# ================================================================ gradcheck
XG = RNG.normal(size=(2, 3))


_DEFAULT = object()


def ngrad(f=np.square, x=_DEFAULT, dout=_DEFAULT, **kw):
    x = XG.copy() if x is _DEFAULT else x
    dout = np.ones_like(XG) if dout is _DEFAULT else dout
    return gradcheck.numerical_gradient(f, x, dout, **kw)


for label, value in [("3", 3), ("None", None), ("str", "square"), ("array", XG)]:
    bad(f"numerical_gradient f={label}", "f", lambda v=value: ngrad(f=v))
for label, value in [("list", XG.tolist()), ("int array", np.ones((2, 3), int)),
                     ("float16", XG.astype(np.float16)), ("nan", with_entry(XG, NAN)),
                     ("inf", with_entry(XG, INF)), ("None", None), ("scalar", 1.0)]:
    bad(f"numerical_gradient x={label}", "x", lambda v=value: ngrad(x=v))
for label, value in BAD_NUMBERS + [("0", 0.0), ("-1e-5", -1e-5)]:
    bad(f"numerical_gradient h={label}", "h", lambda v=value: ngrad(h=v))
for label, value in bad_arrays((2, 3)) + [("wrong shape", np.ones(3))]:
    bad(f"numerical_gradient dout={label}", "dout", lambda v=value: ngrad(dout=v))
bad("numerical_gradient f returns NaN", "f", lambda: ngrad(f=lambda v: v * np.nan))
bad("numerical_gradient f returns inf near x", "f",
    lambda: ngrad(f=lambda v: np.where(v > XG, np.inf, v)))
bad("numerical_gradient f returns a string", "f", lambda: ngrad(f=lambda v: "x"))
bad("numerical_gradient x=1e30 with h=1e-5", "h", lambda: ngrad(x=XG * 1e30))
bad("numerical_gradient float32 with h=1e-5", "h", lambda: ngrad(x=XG.astype(np.float32)))
good("numerical_gradient x=1e30 with h=1e25", lambda: ngrad(x=XG * 1e30, h=1e25),
     close(2 * XG * 1e30, atol=0, rtol=1e-6))
good("numerical_gradient float32 with h=1e-2", lambda: ngrad(
    f=lambda v: v * v, x=XG.astype(np.float32), h=1e-2), close(2 * XG, atol=1e-3))
good("numerical_gradient empty x", lambda: gradcheck.numerical_gradient(
    np.square, np.zeros(0), np.zeros(0)), close(np.zeros(0), atol=0))
good("numerical_gradient list dout", lambda: ngrad(dout=np.ones((2, 3)).tolist()),
     close(2 * XG, atol=1e-8))
good("numerical_gradient scalar f and dout", lambda: gradcheck.numerical_gradient(
    lambda v: np.sum(v ** 3), XG.copy(), 1.0), close(3 * XG ** 2, atol=1e-7))

for name in ("a", "b"):
    for label, value in bad_arrays((3,)):
        args = {"a": ONES, "b": ONES, name: value}
        bad(f"rel_error {name}={label}", name, lambda a=args: gradcheck.rel_error(a["a"], a["b"]))
bad("rel_error shapes differ", "b", lambda: gradcheck.rel_error(ONES, np.ones(4)))
bad("rel_error empty", "a", lambda: gradcheck.rel_error([], []))
good("rel_error (1e308, 1.5e308)", lambda: gradcheck.rel_error(1e308, 1.5e308),
     close(0.2, atol=1e-15))
good("rel_error (-1e308, 1e308)", lambda: gradcheck.rel_error(-1e308, 1e308),
     close(1.0, atol=0))
good("rel_error near max, lists", lambda: gradcheck.rel_error([1.7e308, 1.0], [1.7e308, 3.0]),
     close(0.5, atol=1e-15))
good("rel_error tiny", lambda: gradcheck.rel_error(1e-320, 0.0), close(0.0, atol=1e-300))
good("rel_error float32 vs float64", lambda: gradcheck.rel_error(np.float32([1, 3]), [1.0, 1.0]),
     close(0.5, atol=1e-15))
good("rel_error ints", lambda: gradcheck.rel_error([1, 2], [1, 2]), close(0.0, atol=0))

# ================================================================ nn
XS = RNG.random((6, 4))
YS = np.array([0, 1, 2, 0, 1, 2])
SPLIT = data.Split(RNG.random((12, 4)), np.arange(12) % 3, RNG.random((6, 4)), YS)


def small(**kw):
    return nn.MLP((4, 5, 3), seed=0, **kw)


for label, value in BAD_INTS[:3] + [("(4,)", (4,)), ("(4, 0, 3)", (4, 0, 3)),
                                    ("(4, 2.5, 3)", (4, 2.5, 3)), ("('4', 3)", ("4", 3)),
                                    ("(4, -1, 3)", (4, -1, 3)), ("(4, True, 3)", (4, True, 3)),
                                    ("64", 64), ("()", ())]:
    bad(f"MLP sizes={label}", "sizes", lambda v=value: nn.MLP(v))
for label, value in [("'softmax'", "softmax"), ("None", None), ("3", 3), ("['relu']", ["relu"])]:
    bad(f"MLP activation={label}", "activation", lambda v=value: small(activation=v))
for label, value in [("'layer'", "layer"), ("3", 3), ("True", True),
                     ("callable -> None", lambda w: None), ("callable -> int", lambda w: 3)]:
    bad(f"MLP norm={label}", "norm", lambda v=value: small(norm=v))
for label, value in [("'middle'", "middle"), ("None", None)]:
    bad(f"MLP norm_position={label}", "norm_position", lambda v=value: small(norm_position=v))
for label, value in BAD_NUMBERS + [("0", 0.0), ("-1", -1.0)]:
    bad(f"MLP init_scale={label}", "init_scale", lambda v=value: small(init_scale=v))
for label, value in [("'a'", "a"), ("-1", -1), ("2.5", 2.5), ("True", True), ("None-like list",
                                                                               [None])]:
    bad(f"MLP seed={label}", "seed", lambda v=value: nn.MLP((4, 5, 3), seed=v))
for label, value in [("int", int), ("'float'", "foo"), ("object", object), ("float16", np.float16)]:
    bad(f"MLP dtype={label}", "dtype", lambda v=value: small(dtype=v))
bad("MLP momentum=1", "momentum", lambda: small(norm="batch", momentum=1.0))
bad("MLP eps=0", "eps", lambda: small(norm="batch", eps=0.0))
good("MLP list sizes, np.int64 widths", lambda: nn.MLP([4, np.int64(5), 3]).forward(
    XS, training=False), shaped((6, 3)))
good("MLP float32", lambda: small(dtype=np.float32).forward(XS, training=False),
     shaped((6, 3), np.float32))


for norm in (None, "batch"):
    tag = f"norm={norm}"
    for training in (True, False):
        for label, value in bad_arrays((6, 4)) + [("1-D", XS[0]), ("(6, 5)", np.ones((6, 5))),
                                                  ("scalar", 1.0)]:
            bad(f"MLP.forward {tag} training={training} x={label}", "x",
                lambda v=value, n=norm, t=training: small(norm=n).forward(v, training=t))
    for label, value in [("None", None), ("'yes'", "yes"), ("1", 1)]:
        bad(f"MLP.forward {tag} training={label}", "training",
            lambda v=value, n=norm: small(norm=n).forward(XS, training=v))
    good(f"MLP.forward {tag} int list x", lambda n=norm: (
        small(norm=n).forward([[1, 0, 1, 0]] * 3, training=False),
        small(norm=n).forward(np.array([[1.0, 0, 1, 0]] * 3), training=False)),
        that(lambda r: np.array_equal(*r), "the logits of the same floats"))
    good(f"MLP.forward {tag} empty batch in inference", lambda n=norm: small(norm=n).forward(
        np.zeros((0, 4)), training=False), close(np.zeros((0, 3)), atol=0))
bad("MLP.forward batch norm, empty training batch", "x",
    lambda: small(norm="batch").forward(np.zeros((0, 4)), training=True))
good("MLP.forward batch norm, one example in training (normalized to beta)",
     lambda: small(norm="batch").forward(XS[:1], training=True), all_finite)


def _forwarded(norm=None):
    model = small(norm=norm)
    model.forward(XS, training=True)
    return model


bad("MLP.backward before forward", "backward", lambda: small().backward(np.ones((6, 3))))
for label, value in bad_arrays((6, 3)) + [("wrong shape", np.ones((5, 3))),
                                          ("1-D", np.ones(3))]:
    bad(f"MLP.backward dlogits={label}", "dlogits",
        lambda v=value: _forwarded("batch").backward(v))
bad("MLP.backward input_grad='no'", "input_grad",
    lambda: _forwarded().backward(np.ones((6, 3)), input_grad="no"))
good("MLP.backward list dlogits", lambda: _forwarded().backward(np.ones((6, 3)).tolist()),
     all_finite)

for label, value in bad_arrays((6, 3)) + [("1-D", np.ones(3)), ("empty", np.zeros((0, 3))),
                                          ("no classes", np.zeros((6, 0)))]:
    bad(f"softmax_cross_entropy logits={label}", "logits",
        lambda v=value: nn.softmax_cross_entropy(v, YS))
for label, value in [("-1", [-1, 0, 1, 2, 0, 1]), ("3 (= K)", [3, 0, 1, 2, 0, 1]),
                     ("float", YS.astype(float)), ("bool", YS.astype(bool)),
                     ("wrong length", YS[:5]), ("2-D", YS[:, None]), ("None", None),
                     ("str", ["a"] * 6)]:
    bad(f"softmax_cross_entropy y={label}", "y",
        lambda v=value: nn.softmax_cross_entropy(np.zeros((6, 3)), v))
bad("softmax_cross_entropy loss overflows", "logits",
    lambda: nn.softmax_cross_entropy([[1.7e308, -1.7e308]], [1]))
good("softmax_cross_entropy lists", lambda: nn.softmax_cross_entropy([[0.0, 0.0]], [1]),
     lambda r: np.testing.assert_allclose(r[0], np.log(2), rtol=1e-15))
good("softmax_cross_entropy huge logits", lambda: nn.softmax_cross_entropy(
    [[1e308, 0.0]], [0]), lambda r: np.testing.assert_allclose(r[0], 0.0, atol=1e-300))
good("softmax_cross_entropy float32", lambda: nn.softmax_cross_entropy(
    np.zeros((2, 4), np.float32), np.array([1, 3], np.uint8)),
     lambda r: np.testing.assert_allclose(r[0], np.log(4), rtol=1e-6))


def _nan_model():
    model = small()
    model.weights[0][...] = np.nan
    return model


for label, value in bad_arrays((6, 4)) + [("(6, 5)", np.ones((6, 5))),
                                          ("empty", np.zeros((0, 4)))]:
    bad(f"accuracy x={label}", "x", lambda v=value: nn.accuracy(small(), v, YS))
for label, value in [("wrong length", YS[:5]), ("float", YS * 1.0), ("3 (= K)", YS + 1),
                     ("None", None)]:
    bad(f"accuracy y={label}", "y", lambda v=value: nn.accuracy(small(), XS, v))
bad("accuracy model=None", "model", lambda: nn.accuracy(None, XS, YS))
bad("accuracy NaN weights", "model", lambda: nn.accuracy(_nan_model(), XS, YS))
good("accuracy lists", lambda: (nn.accuracy(small(), XS.tolist(), YS.tolist()),
                                 np.mean(small().forward(XS, training=False).argmax(1) == YS)),
     that(lambda r: r[0] == r[1], "the argmax rate"))

for label, value in BAD_NUMBERS + [("0", 0.0), ("-0.1", -0.1)]:
    bad(f"sgd_step lr={label}", "lr", lambda v=value: nn.sgd_step(_forwarded_with_grads(), v))
bad("sgd_step before backward", "model", lambda: nn.sgd_step(small(), 0.1))
bad("sgd_step model=None", "model", lambda: nn.sgd_step(None, 0.1))


def _forwarded_with_grads():
    model = _forwarded()
    model.backward(np.ones((6, 3)))
    return model


for label, value in BAD_INTS + [("0", 0), ("-1", -1)]:
    bad(f"batch_indices n={label}", "n", lambda v=value: nn.batch_indices(v, 2, 1))
for label, value in BAD_INTS + [("-1", -1)]:
    bad(f"batch_indices steps={label}", "steps", lambda v=value: nn.batch_indices(5, v, 2))
for label, value in BAD_INTS + [("0", 0), ("6 > n", 6)]:
    bad(f"batch_indices batch_size={label}", "batch_size",
        lambda v=value: nn.batch_indices(5, 2, v))
bad("batch_indices seed=-1", "seed", lambda: nn.batch_indices(5, 2, 2, seed=-1))
good("batch_indices steps=0", lambda: nn.batch_indices(5, 0, 2), close(np.zeros((0, 2)), atol=0))


def tr(model=None, split=SPLIT, **kw):
    kw = {"steps": 2, "batch_size": 4, "eval_every": 1, **kw}
    return nn.train(small() if model is None else model, split, **kw)


bad("train model=None", "model", lambda: tr(model="mlp"))
for label, value in [("None", None), ("tuple of 2", (XS, YS)), ("dict", {"x_train": XS})]:
    bad(f"train split={label}", "split", lambda v=value: tr(split=v))
for part, bad_values in [("x_train", [("nan", with_entry(SPLIT.x_train, NAN)),
                                      ("(12, 5)", np.ones((12, 5))), ("empty", np.zeros((0, 4))),
                                      ("str", "abc")]),
                         ("y_train", [("-1", with_entry(SPLIT.y_train, -1).astype(int)),
                                      ("3", SPLIT.y_train + 1), ("float", SPLIT.y_train * 1.0),
                                      ("wrong length", SPLIT.y_train[:5])]),
                         ("x_test", [("inf", with_entry(SPLIT.x_test, INF)),
                                     ("1-D", np.ones(4))]),
                         ("y_test", [("bool", SPLIT.y_test.astype(bool)),
                                     ("3", SPLIT.y_test + 1)])]:
    for label, value in bad_values:
        bad(f"train split.{part}={label}", f"split.{part}",
            lambda p=part, v=value: tr(split=SPLIT._replace(**{p: v})))
for label, value in BAD_INTS + [("-1", -1)]:
    bad(f"train steps={label}", "steps", lambda v=value: tr(steps=v))
for label, value in BAD_INTS + [("0", 0), ("13 > N", 13)]:
    bad(f"train batch_size={label}", "batch_size", lambda v=value: tr(batch_size=v))
bad("train batch_size=1 with batch norm", "batch_size",
    lambda: tr(model=small(norm="batch"), batch_size=1))
for label, value in BAD_NUMBERS + [("0", 0.0), ("-0.1", -0.1)]:
    bad(f"train lr={label}", "lr", lambda v=value: tr(lr=v))
for label, value in [("'a'", "a"), ("-1", -1), ("2.5", 2.5), ("None-list", [None])]:
    bad(f"train seed={label}", "seed", lambda v=value: tr(seed=v))
for label, value in BAD_INTS + [("0", 0), ("-1", -1)]:
    bad(f"train eval_every={label}", "eval_every", lambda v=value: tr(eval_every=v))
for label, value in [("3", 3), ("'f'", "f")]:
    bad(f"train record={label}", "record", lambda v=value: tr(record=v))
for label, value in [("returns a list", lambda m: [1.0]), ("returns None", lambda m: None),
                     ("returns a str value", lambda m: {"a": "x"}),
                     ("returns an array value", lambda m: {"a": np.ones(3)})]:
    bad(f"train record {label}", "record", lambda v=value: tr(record=v))
good("train steps=0", lambda: tr(steps=0),
     that(lambda h: len(h.step) == 0 and list(h.eval_step) == [0], "no step, one evaluation"))
good("train batch_size = N, lists in the split", lambda: tr(
    batch_size=12, split=data.Split(SPLIT.x_train.tolist(), SPLIT.y_train.tolist(),
                                    SPLIT.x_test, SPLIT.y_test)),
     that(lambda h: len(h.loss) == 2 and np.isfinite(h.loss).all(), "2 finite losses"))
good("train batch_size=1 without batch norm", lambda: tr(batch_size=1),
     that(lambda h: len(h.loss) == 2 and np.isfinite(h.loss).all(), "2 finite losses"))
good("train lr as int, np.int64 steps", lambda: tr(lr=1, steps=np.int64(2)),
     that(lambda h: len(h.loss) == 2 and np.isfinite(h.loss).all(), "2 finite losses"))

for label, value in [("nan", NAN), ("'3'", "3"), ("2.5", 2.5), ("-1", -1)]:
    bad(f"History.accuracy_at step={label}", "step",
        lambda v=value: tr().accuracy_at(v))
bad("restore_on_exit model=None", "model", lambda: nn.restore_on_exit(None).__enter__())
for label, value in [("None", None), ("{}", {}), ("list", [1])]:
    bad(f"MLP.load_state state={label}", "state", lambda v=value: small().load_state(v))
bad("MLP.load_state other architecture", "state",
    lambda: small().load_state(nn.MLP((4, 5, 5, 3)).state()))
bad("MLP.load_state NaN weight", "state", lambda: small().load_state(
    {**small().state(), "weights": [np.full((4, 5), NAN), np.ones((5, 3))]}))
bad("MLP.load_state wrong shape", "state", lambda: small().load_state(
    {**small().state(), "weights": [np.ones((4, 6)), np.ones((5, 3))]}))
for label, value in bad_arrays((3,)):
    bad(f"sigmoid z={label}", "z", lambda v=value: nn.sigmoid(v))
good("sigmoid list", lambda: nn.sigmoid([0, 1000, -1000]), close([0.5, 1.0, 0.0], atol=1e-15))
bad("FastBatchNorm axis=True", "axis", lambda: nn.FastBatchNorm(3, axis=True))
bad("FastBatchNorm shape=0", "shape", lambda: nn.FastBatchNorm(0))

# ================================================================ data
for label, value in BAD_INTS + [("0", 0), ("-1", -1)]:
    bad(f"random_images n={label}", "n", lambda v=value: data.random_images(n=v))
    bad(f"random_images size={label}", "size", lambda v=value: data.random_images(size=v))
    bad(f"signal n={label}", "n", lambda v=value: data.signal("step", v))
    bad(f"covariate_shift n_source={label}", "n_source",
        lambda v=value: data.covariate_shift(n_source=v))
for label, value in BAD_NUMBERS + [("0", 0.0), ("1", 1.0)]:
    bad(f"digits test_fraction={label}", "test_fraction",
        lambda v=value: data.digits(test_fraction=v))
for label, value in [("int", int), ("'x'", "x")]:
    bad(f"digits dtype={label}", "dtype", lambda v=value: data.digits(dtype=v))
for label, value in [("-1", -1), ("'a'", "a"), ("2.5", 2.5)]:
    bad(f"digits seed={label}", "seed", lambda v=value: data.digits(seed=v))
    bad(f"signal seed={label}", "seed", lambda v=value: data.signal("step", seed=v))
for label, value in [("'ramp'", "ramp"), ("None", None), ("3", 3)]:
    bad(f"signal kind={label}", "kind", lambda v=value: data.signal(v))
for label, value in [("nan", NAN), ("-1", -1.0), ("None", None)]:
    bad(f"signal noise={label}", "noise", lambda v=value: data.signal("step", noise=v))
    bad(f"covariate_shift noise={label}", "noise", lambda v=value: data.covariate_shift(noise=v))
bad("covariate_shift shift=nan", "shift", lambda: data.covariate_shift(shift=NAN))
good("digits float32", lambda: data.digits(dtype=np.float32).x_train,
     shaped((1347, 64), np.float32))
good("signal np.int64 n", lambda: data.signal("drift", np.int64(5))[1],
     close(np.linspace(0, 5, 5), atol=1e-12))

BAD = [c for c in CASES if c.arg is not None]
GOOD = [c for c in CASES if c.arg is None]


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_input_raises_a_value_error_naming_the_argument(case):
    with pytest.raises(ValueError) as info:
        case.call()
    assert is_clear(str(info.value), case.arg), (
        f"the message should read '{case.arg} must ...; got ...': {info.value}")


@pytest.mark.parametrize("case", GOOD, ids=[c.id for c in GOOD])
def test_valid_or_extreme_input_gives_a_correct_result(case):
    case.check(case.call())
