"""Softmax along the last axis on the GPU (chapter 11: GPUs with numba.cuda; the maths is
chapter 3's `softmax_reference`).

One thread block per row. Thread t handles elements t, t + THREADS, t + 2*THREADS, ... of the
row, so at every step neighbouring threads read neighbouring floats (coalesced loads); the row
maximum and the sum of exponentials are combined across the block by `block_reduce`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..checks import float_array
from .device import THREADS, to_device
from .reduce import MAX, SUM, block_reduce


@cuda.jit
def _softmax_rows(x, out):
    r, t = cuda.blockIdx.x, cuda.threadIdx.x  # x, out: (rows, n); block r does row r
    n = x.shape[1]
    scratch = cuda.shared.array((1, THREADS), float32)
    m = float32(-math.inf)
    for i in range(t, n, THREADS):
        m = max(m, x[r, i])
    m = block_reduce(m, scratch, MAX)
    total = float32(0.0)
    for i in range(t, n, THREADS):
        e = math.exp(x[r, i] - m)
        out[r, i] = e
        total += e
    inv = float32(1.0) / block_reduce(total, scratch, SUM)
    for i in range(t, n, THREADS):
        out[r, i] *= inv


def softmax_device(x):
    """Device entry point: x device float32 (rows, n) -> new device array (rows, n)."""
    out = cuda.device_array_like(x)
    _softmax_rows[x.shape[0], THREADS](x, out)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """`softmax_reference` on the GPU: float32 NumPy in, NumPy out."""
    x = float_array("x", x)
    rows = x.reshape(-1, x.shape[-1])  # (rows, n)
    return softmax_device(to_device(rows)).copy_to_host().reshape(x.shape)
