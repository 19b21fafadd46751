"""Matrix products on the GPU, naive and tiled through shared memory, and the linear layer
(chapter 11: GPUs with numba.cuda; the maths is chapter 4's `linear_reference`).

    out = act(a @ b + bias),   a (M, K), b (K, N), bias (N,), act: none or GELU

Numbered for the chapter (`MATMUL_KERNELS`; `ffn.FFN_VERSIONS` runs each on NumPy arrays):
  v1  naive: one thread per output element reads a whole row of a and column of b from global
      memory: every input element is read N (or M) times;
  v2  tiled: a TILE x TILE thread block computes a TILE x TILE tile of out; for each step along
      K the block first copies one tile of a and one of b into shared memory (each thread one
      element of each, coalesced), waits at a barrier, then every thread does TILE
      multiply-adds from shared memory: global reads drop by a factor TILE.
Thread x indexes columns, so neighbouring threads touch neighbouring floats of b and out.
The bias add and the activation are applied to the result before it is stored (fused).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from ..linear import _check
from .device import TILE, blocks, to_device
from .gelu_kernels import gelu_scalar
from .weights import on_device

NONE, GELU = 0, 1  # activations applied to a @ b + bias


@cuda.jit(device=True)
def _finish(value, act):
    return gelu_scalar(value) if act == GELU else value


@cuda.jit
def _matmul_v1(a, b, bias, act, out):
    col, row = cuda.grid(2)  # one thread per out[row, col]
    if row < out.shape[0] and col < out.shape[1]:
        acc = float32(0.0)
        for k in range(a.shape[1]):
            acc += a[row, k] * b[k, col]
        out[row, col] = _finish(acc + bias[col], act)


@cuda.jit
def _matmul_v2(a, b, bias, act, out):
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    m, n_k = a.shape
    a_s = cuda.shared.array((TILE, TILE), float32)  # a[rows of the block, k0:k0+TILE]
    b_s = cuda.shared.array((TILE, TILE), float32)  # b[k0:k0+TILE, columns of the block]
    acc = float32(0.0)
    for k0 in range(0, n_k, TILE):
        # zeros past the edges, so the loop below needs no bounds checks
        a_s[ty, tx] = a[row, k0 + tx] if row < m and k0 + tx < n_k else float32(0.0)
        b_s[ty, tx] = b[k0 + ty, col] if k0 + ty < n_k and col < out.shape[1] else float32(0.0)
        cuda.syncthreads()  # the tiles are complete
        for k in range(TILE):
            acc += a_s[ty, k] * b_s[k, tx]
        cuda.syncthreads()  # everyone is done with the tiles before they are overwritten
    if row < m and col < out.shape[1]:
        out[row, col] = _finish(acc + bias[col], act)


MATMUL_KERNELS = {"v1": _matmul_v1, "v2": _matmul_v2}


def matmul_device(a, b, bias, act=NONE, version="v2"):
    """Device entry point: act(a @ b + bias) for device float32 a (M, K), b (K, N), bias (N,)
    -> new device array (M, N)."""
    out = cuda.device_array((a.shape[0], b.shape[1]), np.float32)
    grid = (blocks(b.shape[1], TILE), blocks(a.shape[0], TILE))
    MATMUL_KERNELS[version][grid, (TILE, TILE)](a, b, bias, act, out)
    return out


def linear(x, w, b):
    """`linear_reference` on the GPU (x (..., K) @ w (K, N) + b (N,)): NumPy in, NumPy out."""
    raw = (w, b)
    x, w, b = _check(x, w, b, (np.float32,))
    rows = x.reshape(-1, x.shape[-1])  # (M, K)
    out = matmul_device(to_device(rows), on_device(raw[0], w), on_device(raw[1], b))
    return out.copy_to_host().reshape(*x.shape[:-1], w.shape[1])
