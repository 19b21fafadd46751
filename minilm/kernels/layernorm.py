"""LayerNorm over the last axis: the NumPy reference and the Numba CPU kernel.

Taught in chapter 4 (the Transformer block):
    y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta      (biased variance, as GPT-2)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array, positive_float, same_dtype, shape_is
from .fastexp import FASTMATH
from .threads import in_cpu_region


def _check(x, gamma, beta, eps, dtypes):
    x = float_array("x", x, dtypes=dtypes)
    gamma = float_array("gamma", gamma, ndims=(1,), dtypes=dtypes)
    beta = float_array("beta", beta, ndims=(1,), dtypes=dtypes)
    same_dtype(x=x, gamma=gamma, beta=beta)
    shape_is("gamma", gamma, (x.shape[-1],), "the last axis of x")
    shape_is("beta", beta, (x.shape[-1],), "the last axis of x")
    return x, gamma, beta, positive_float("eps", eps)


def layernorm_reference(x, gamma, beta, eps=1e-5):
    """x (..., C), gamma (C,), beta (C,) -> (..., C)."""
    x, gamma, beta, eps = _check(x, gamma, beta, eps, FLOAT_DTYPES)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * gamma + beta


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _layernorm_rows(x, gamma, beta, eps, out):
    rows, n = x.shape
    for r in prange(rows):
        row = x[r]
        total = np.float32(0.0)
        for i in range(n):
            total += row[i]
        mean = total / n
        sq = np.float32(0.0)
        for i in range(n):  # two passes: no cancellation in E[x^2] - E[x]^2
            d = row[i] - mean
            sq += d * d
        inv_std = np.float32(1.0) / np.sqrt(sq / n + eps)
        for i in range(n):
            out[r, i] = (row[i] - mean) * inv_std * gamma[i] + beta[i]


@in_cpu_region
def layernorm_cpu(x, gamma, beta, eps=1e-5):
    """Numba version of `layernorm_reference`: one row per parallel iteration."""
    x, gamma, beta, eps = _check(x, gamma, beta, eps, (np.float32,))
    rows2d = x.reshape(-1, x.shape[-1])  # (rows, C)
    out = np.empty_like(rows2d)
    _layernorm_rows(rows2d, gamma, beta, np.float32(eps), out)
    return out.reshape(x.shape)
