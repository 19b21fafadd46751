"""The backward pass of every layer: readable NumPy references, the spec for the fast kernels.

Taught in chapter 6 (training). Each function takes what its forward took (the activations the
training forward saved) and the gradient of the loss with respect to the layer's output, and
returns the gradients with respect to the layer's inputs and parameters:

    embedding_backward(tokens, d_out, vocab_size)     -> d_table                 (V, C)
    linear_backward(x, w, d_y)                        -> d_x, d_w, d_b
    layernorm_backward(x, gamma, d_y, eps)            -> d_x, d_gamma, d_beta
    gelu_backward(x, d_y)                             -> d_x
    attention_backward(q, k, v, d_out, causal, out)   -> d_q, d_k, d_v
    cross_entropy(logits, targets)                    -> mean loss (nats), d_logits

They accept float32 and float64 (the float64 path is what the finite-difference gradient checks
use). `backward_ops(backend)` is the dispatch point: "reference" gives this module, "cpu" the
Numba kernels of `minilm.kernels.backward_cpu`, which have the same names and signatures.
"""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np

from .evaluate import log_softmax
from .kernels.attention import attention_probs
from .kernels.attention import check_qkv as check_attention
from .kernels.checks import FLOAT_DTYPES, float_array, positive_float, same_dtype, shape_is
from .kernels.gelu import SQRT_2_OVER_PI

TRAIN_BACKENDS = ("reference", "cpu")


def check_train_backend(backend) -> str:
    """Training (backward kernels, optimizer, training loop) runs on "reference" or "cpu"."""
    if backend not in TRAIN_BACKENDS:
        raise ValueError(f"training runs on backend {' or '.join(map(repr, TRAIN_BACKENDS))}, "
                         f"got {backend!r}")
    return backend


def backward_ops(backend: str):
    """The backward functions of a backend: this module ("reference") or the Numba kernels."""
    if check_train_backend(backend) == "reference":
        return sys.modules[__name__]
    return importlib.import_module("minilm.kernels.backward_cpu")


# ---------------------------------------------------------------- argument checks (all backends)

def check_tokens(name: str, tokens, shape: tuple, vocab_size: int) -> np.ndarray:
    """An integer array of the given shape with values in [0, vocab_size)."""
    tokens = np.asarray(tokens)
    if tokens.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {tokens.dtype}")
    shape_is(name, tokens, shape, "one token id per position")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got values in "
                         f"[{tokens.min()}, {tokens.max()}]")
    return np.asarray(tokens, dtype=np.int64, order="C")  # (ascontiguousarray makes 0-d 1-d)


def check_grad(name: str, d: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A gradient must have the shape and dtype of the output it belongs to."""
    d = float_array(name, d, dtypes=(like.dtype.type,))
    shape_is(name, d, like.shape, "the shape of the layer's output")
    return d


def check_attention_out(out, q, k, inputs=()) -> tuple:
    """Where an attention backward writes d_q, d_k, d_v: new arrays if `out` is None, else the
    three given arrays, shaped like q, k, k with their dtype; any strides (views of one larger
    buffer are the point: the training backward passes views of its d_qkv buffer), but apart
    from the `inputs` (they are read while the gradients are written)."""
    if out is None:
        return np.empty_like(q), np.empty_like(k), np.empty_like(k)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise TypeError(f"out must be a tuple of three arrays (d_q, d_k, d_v), got {out!r:.60}")
    for name, array, like in zip(("d_q", "d_k", "d_v"), out, (q, k, k), strict=True):
        if not (isinstance(array, np.ndarray) and array.dtype == like.dtype
                and array.shape == like.shape and array.flags.writeable):
            got = (f"{array.dtype} {array.shape}{'' if array.flags.writeable else ' read-only'}"
                   if isinstance(array, np.ndarray) else type(array).__name__)
            raise ValueError(f"out {name} must be a writable {like.dtype} array of shape "
                             f"{like.shape}, got {got}")
        if any(np.may_share_memory(array, given) for given in inputs):
            raise ValueError(f"out {name} must not share memory with q, k, v or d_out")
    return tuple(out)


def check_linear(x, w, d_y, dtypes=FLOAT_DTYPES):
    x = float_array("x", x, dtypes=dtypes)
    w = float_array("w", w, ndims=(2,), dtypes=dtypes)
    same_dtype(x=x, w=w)
    shape_is("w", w, (x.shape[-1], w.shape[1]), "(K, N) with K the last axis of x")
    d_y = float_array("d_y", d_y, dtypes=dtypes)
    shape_is("d_y", d_y, (*x.shape[:-1], w.shape[1]), "(..., N)")
    same_dtype(x=x, d_y=d_y)
    return x, w, d_y


def check_layernorm(x, gamma, d_y, eps, dtypes=FLOAT_DTYPES):
    x = float_array("x", x, dtypes=dtypes)
    gamma = float_array("gamma", gamma, ndims=(1,), dtypes=dtypes)
    same_dtype(x=x, gamma=gamma)
    shape_is("gamma", gamma, (x.shape[-1],), "the last axis of x")
    return x, gamma, check_grad("d_y", d_y, x), positive_float("eps", eps)


def check_cross_entropy(logits, targets, dtypes=FLOAT_DTYPES):
    logits = float_array("logits", logits, dtypes=dtypes)
    targets = check_tokens("targets", targets, logits.shape[:-1], logits.shape[-1])
    return logits, targets


# ---------------------------------------------------------------------------------- references

def embedding_backward(tokens, d_out, vocab_size: int) -> np.ndarray:
    """Gradient of a table lookup `table[tokens]`: each row of d_out is added to its token's row.

    tokens int (...), d_out (..., C) -> d_table (V, C). A token seen twice gets both gradients.
    """
    d_out = float_array("d_out", d_out, dtypes=FLOAT_DTYPES)
    tokens = check_tokens("tokens", tokens, d_out.shape[:-1], vocab_size)
    d_table = np.zeros((vocab_size, d_out.shape[-1]), d_out.dtype)  # (V, C)
    np.add.at(d_table, tokens.reshape(-1), d_out.reshape(-1, d_out.shape[-1]))
    return d_table


def linear_backward(x, w, d_y):
    """y = x @ w + b:  d_x = d_y @ w^T,  d_w = x^T @ d_y (summed over rows),  d_b = sum of d_y."""
    x, w, d_y = check_linear(x, w, d_y)
    rows, d_rows = x.reshape(-1, x.shape[-1]), d_y.reshape(-1, d_y.shape[-1])  # (M, K), (M, N)
    return d_y @ w.T, rows.T @ d_rows, d_rows.sum(axis=0)  # (..., K), (K, N), (N,)


def layernorm_backward(x, gamma, d_y, eps=1e-5):
    """y = xhat * gamma + beta with xhat = (x - mean) / std over the last axis.

    d_xhat = d_y * gamma; the mean and the std depend on every x of the row, which gives
        d_x = (d_xhat - mean(d_xhat) - xhat * mean(d_xhat * xhat)) / std.
    d_gamma and d_beta sum over every row.
    """
    x, gamma, d_y, eps = check_layernorm(x, gamma, d_y, eps)
    mean = x.mean(axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + x.dtype.type(eps))
    xhat = (x - mean) * inv_std
    d_xhat = d_y * gamma
    d_x = (d_xhat - d_xhat.mean(axis=-1, keepdims=True)
           - xhat * (d_xhat * xhat).mean(axis=-1, keepdims=True)) * inv_std
    rows = tuple(range(x.ndim - 1))
    return d_x, (d_y * xhat).sum(axis=rows), d_y.sum(axis=rows)  # (..., C), (C,), (C,)


def gelu_backward(x, d_y):
    """gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3):
    gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x = float_array("x", x, dtypes=FLOAT_DTYPES)
    d_y = check_grad("d_y", d_y, x)
    c, a = x.dtype.type(SQRT_2_OVER_PI), x.dtype.type(0.044715)
    t = np.tanh(c * (x + a * x**3))
    slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * a * x * x)
    return d_y * slope


def attention_backward(q, k, v, d_out, causal=True, out=None):
    """out = p @ v with p = softmax(s), s = q k^T / sqrt(D) (+ causal mask). The reference keeps
    the whole (..., Tq, Tk) matrix p; the Numba kernel recomputes it row by row instead.

        d_v = p^T d_out,   d_p = d_out v^T,   d_s = p * (d_p - rowsum(d_p * p)),
        d_q = d_s k / sqrt(D),   d_k = d_s^T q / sqrt(D)      (masked entries have p = 0)

    out: optional arrays (d_q, d_k, d_v) to write the gradients into (then returned).
    """
    q, k, v = check_attention(q, k, v, causal, FLOAT_DTYPES)
    d_out = check_grad("d_out", d_out, q)
    d_q, d_k, d_v = check_attention_out(out, q, k, (q, k, v, d_out))
    p = attention_probs(q, k, causal)  # (..., Tq, Tk)
    d_v[...] = np.swapaxes(p, -1, -2) @ d_out  # (..., Tk, D)
    d_p = d_out @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk)
    d_s = p * (d_p - (d_p * p).sum(axis=-1, keepdims=True))
    scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    d_q[...] = d_s @ k * scale
    d_k[...] = np.swapaxes(d_s, -1, -2) @ q * scale
    return d_q, d_k, d_v


def cross_entropy(logits, targets):
    """Mean over positions of -log softmax(logits)[target] (nats), and its gradient
    d_logits = (softmax(logits) - onehot(target)) / n_positions (dtype of logits)."""
    logits, targets = check_cross_entropy(logits, targets)
    log_probs = log_softmax(logits)  # (..., V) float64
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)  # (..., 1)
    n = targets.size
    d_logits = np.exp(log_probs)
    np.put_along_axis(d_logits, targets[..., None], np.exp(picked) - 1, axis=-1)
    return float(-picked.sum() / n), (d_logits / n).astype(logits.dtype)
