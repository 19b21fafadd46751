"""Softmax along the last axis: the NumPy reference and the Numba CPU kernel.

Taught in chapter 3 (attention). Numerically safe: the row maximum is subtracted before `exp`,
so large scores do not overflow (softmax is unchanged by adding a constant to a row).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array
from .fastexp import FASTMATH, exp_block
from .threads import in_cpu_region


def softmax_reference(x: np.ndarray) -> np.ndarray:
    """softmax(x)[..., i] = exp(x_i - max x) / sum_j exp(x_j - max x), over the last axis."""
    x = float_array("x", x, dtypes=FLOAT_DTYPES)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


@njit(inline="always")
def softmax_row(src, dst, n):
    """dst[:n] = softmax(src[:n]) (src and dst may be the same array)."""
    m = src[0]
    for i in range(1, n):
        m = max(m, src[i])
    inv = np.float32(1.0) / exp_block(src, m, dst, n)
    for i in range(n):
        dst[i] *= inv


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def softmax_rows(x, out):
    """The parallel kernel: out (rows, n) = softmax of each row of x (rows, n), float32.
    No checks and no thread region: `softmax_cpu` is the checked entry point."""
    rows, n = x.shape
    for r in prange(rows):
        softmax_row(x[r], out[r], n)


@in_cpu_region
def softmax_cpu(x: np.ndarray) -> np.ndarray:
    """Numba version of `softmax_reference`: one row per parallel iteration, vectorised exp."""
    x = float_array("x", x)
    rows2d = x.reshape(-1, x.shape[-1])  # (rows, n)
    out = np.empty_like(rows2d)
    softmax_rows(rows2d, out)
    return out.reshape(x.shape)
