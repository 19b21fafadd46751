"""LayerNorm over the last axis on the GPU (chapter 11: GPUs with numba.cuda; the maths is
chapter 4's `layernorm_reference`).

One thread block per row, threads striding over the row (coalesced loads) as in softmax_kernels.py:
the block reduces the sum for the mean, then the sum of squared deviations for the variance
(two passes, no cancellation), then every thread writes its elements. gamma and beta are model
weights: inside a model step they are the device copies kept by `weights.py`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..layernorm import _check
from .device import THREADS, to_device
from .reduce import SUM, block_reduce
from .weights import on_device


@cuda.jit
def _layernorm_rows(x, gamma, beta, eps, out):
    r, t = cuda.blockIdx.x, cuda.threadIdx.x  # x, out: (rows, C); block r does row r
    n = x.shape[1]
    scratch = cuda.shared.array((1, THREADS), float32)
    total = float32(0.0)
    for i in range(t, n, THREADS):
        total += x[r, i]
    mean = block_reduce(total, scratch, SUM) / float32(n)
    sq = float32(0.0)
    for i in range(t, n, THREADS):
        d = x[r, i] - mean
        sq += d * d
    inv_std = float32(1.0) / math.sqrt(block_reduce(sq, scratch, SUM) / float32(n) + eps)
    for i in range(t, n, THREADS):
        out[r, i] = (x[r, i] - mean) * inv_std * gamma[i] + beta[i]


def layernorm_device(x, gamma, beta, eps):
    """Device entry point: x (rows, C), gamma (C,), beta (C,) device float32 -> (rows, C)."""
    out = cuda.device_array_like(x)
    _layernorm_rows[x.shape[0], THREADS](x, gamma, beta, np.float32(eps), out)
    return out


def layernorm(x, gamma, beta, eps=1e-5):
    """`layernorm_reference` on the GPU: float32 NumPy in, NumPy out."""
    raw = (gamma, beta)
    x, gamma, beta, eps = _check(x, gamma, beta, eps, (np.float32,))
    rows = x.reshape(-1, x.shape[-1])  # (rows, C)
    out = layernorm_device(to_device(rows), on_device(raw[0], gamma), on_device(raw[1], beta),
                           eps)
    return out.copy_to_host().reshape(x.shape)
