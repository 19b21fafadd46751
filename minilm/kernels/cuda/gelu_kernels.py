"""GELU on the GPU (chapter 11: GPUs with numba.cuda; the maths is chapter 4's
`gelu_reference`, the tanh approximation of GPT-2).

An element-wise kernel: one thread per element, `cuda.grid(1)` its global index. `gelu_scalar`
is a device function, also applied by the matmul kernels of matmul.py to their results (the
FFN's bias + GELU fused into the first product, so the hidden activations are written once).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..checks import float_array
from ..gelu import SQRT_2_OVER_PI
from .device import THREADS, blocks, to_device


@cuda.jit(device=True)
def gelu_scalar(v):
    """0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) for one float32 v."""
    u = float32(SQRT_2_OVER_PI) * (v + float32(0.044715) * v * v * v)
    return float32(0.5) * v * (float32(1.0) + math.tanh(u))


@cuda.jit
def _gelu_flat(x, out):
    i = cuda.grid(1)  # x, out: (n,)
    if i < x.shape[0]:
        out[i] = gelu_scalar(x[i])


def gelu_device(x):
    """Device entry point: x device float32 (n,) -> new device array (n,)."""
    out = cuda.device_array_like(x)
    _gelu_flat[blocks(x.shape[0], THREADS), THREADS](x, out)
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    """`gelu_reference` on the GPU: float32 NumPy in, NumPy out."""
    x = float_array("x", x)
    return gelu_device(to_device(x.reshape(-1))).copy_to_host().reshape(x.shape)
