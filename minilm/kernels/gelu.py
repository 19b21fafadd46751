"""GELU activation (tanh approximation, as GPT-2): the NumPy reference and the Numba CPU kernel.

Taught in chapter 4 (the Transformer block):
    gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
The kernel uses the identity 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)), so one vectorised exp
replaces the slow scalar `tanh`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array
from .fastexp import FASTMATH, fast_exp
from .threads import in_cpu_region

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CHUNK = 1024  # elements per parallel work item


def gelu_reference(x: np.ndarray) -> np.ndarray:
    """Element-wise GELU, tanh approximation."""
    x = float_array("x", x, dtypes=FLOAT_DTYPES)
    c = x.dtype.type(SQRT_2_OVER_PI)
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x**3)))


@njit(inline="always", fastmath=FASTMATH)
def gelu_bias_chunk(x, bias, out):
    """out[i] = gelu(x[i] + bias[i]) for one chunk (x, bias, out: float32 (n,))."""
    c = np.float32(-2.0 * SQRT_2_OVER_PI)
    for i in range(x.shape[0]):
        v = x[i] + bias[i]
        out[i] = v / (np.float32(1.0) + fast_exp(c * (v + np.float32(0.044715) * v * v * v)))


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _gelu_flat(x, out):
    n = x.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    zeros = np.zeros(CHUNK, np.float32)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        gelu_bias_chunk(x[start:stop], zeros, out[start:stop])


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def bias_gelu_rows(h, bias, out):
    """out[r] = gelu(h[r] + bias) for every row r of h (rows, F); used by the fused FFN."""
    rows, n = h.shape
    for r in prange(rows):
        gelu_bias_chunk(h[r], bias, out[r])


@in_cpu_region
def gelu_cpu(x: np.ndarray) -> np.ndarray:
    """Numba version of `gelu_reference`."""
    x = float_array("x", x)
    flat = x.reshape(-1)  # (n,)
    out = np.empty_like(flat)
    _gelu_flat(flat, out)
    return out.reshape(x.shape)
