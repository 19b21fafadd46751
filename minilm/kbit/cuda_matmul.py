"""The fused k-bit matmul on the GPU: out = x @ dequantize(qt).T from packed codes and scales
(chapter 11: GPUs with numba.cuda; the CPU versions and the spec are chapter 9's matmul.py).

Shapes: x rows (M, K), qt from a weight W (N, K) (row n of W is codes [n*K, (n+1)*K) of the
stream, K a multiple of 8 and of the block size), out (M, N). Numbered versions
(`MATMUL_VERSIONS`, each called as `version(x, qt)` like `kbit.matmul`):
  v1  naive: one thread per output (m, n) walks row n, cutting each code out of the stream on
      its own (`code_at`) and looking it up in the codebook in global memory; neighbouring
      threads read different rows of W (uncoalesced);
  v2  GEMV (decoding): one thread block per output column n, for up to GEMV_ROWS rows of x at
      a time. Thread t reads groups t, t+THREADS, ... of row n of W: 8 codes = k consecutive
      bytes, so neighbouring threads read neighbouring bytes (coalesced), decodes them through
      the codebook copied into shared memory, and multiplies them with every row of x; the
      block sums the partial dot products of all rows together (`block_reduce_rows`). Only
      the packed bytes and the scales come from memory: 4.5 bits per weight instead of 32;
  v3  GEMM (prefill): the shared-memory tiled matmul of kernels/cuda/matmul.py whose tile of W
      is decoded as it is loaded (thread (x, y) decodes W[n0+y, k0+x], so neighbouring threads
      read neighbouring codes of one row); each weight is decoded once per tile of M rows.
`matmul_cuda` (what `kbit.matmul(x, qt, backend="cuda")` runs) uses v2 for up to GEMV_ROWS rows
of x, else v3; all check their arguments as `kbit.matmul` does. The device copies of a model's
k-bit weights are kept between calls (kernels/cuda/weights.py).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from ..kernels.cuda.device import THREADS, TILE, blocks, to_device
from ..kernels.cuda.reduce import SUM, block_reduce_rows
from ..kernels.cuda.weights import on_device
from .cuda_pack import group_code_cuda, read_group_cuda
from .matmul import check_matmul
from .pack import code_at

code_at_cuda = cuda.jit(device=True)(code_at)

GEMV_ROWS = 8  # up to this many rows of x, v2 (one block per output) beats the tiled v3
MAX_CODES = 256  # codebook entries (k <= 8) held in shared memory


@cuda.jit
def _matmul_v1(x, packed, scales, table, bits, block, out):
    idx = cuda.grid(1)  # one thread per out[m, n]
    n_out = out.shape[1]
    if idx < out.shape[0] * n_out:
        m, n = idx // n_out, idx % n_out
        n_cols = x.shape[1]
        acc = float32(0.0)
        for j in range(n_cols):
            i = n * n_cols + j  # flat index of weight (n, j)
            acc += table[code_at_cuda(packed, i, bits)] * scales[i // block] * x[m, j]
        out[m, n] = acc


@cuda.jit(device=True)
def _load_codebook(table, table_s):
    """Copy the codebook into shared memory, the block's threads striding over it."""
    for c in range(cuda.threadIdx.x + cuda.threadIdx.y * cuda.blockDim.x, table.shape[0],
                   cuda.blockDim.x * cuda.blockDim.y):
        table_s[c] = table[c]
    cuda.syncthreads()


@cuda.jit
def _matmul_v2(x, packed, scales, table, bits, block, out):
    n, t = cuda.blockIdx.x, cuda.threadIdx.x  # block n: out[:, n], x has <= GEMV_ROWS rows
    table_s = cuda.shared.array(MAX_CODES, float32)
    scratch = cuda.shared.array((GEMV_ROWS, THREADS), float32)  # per row of x, per thread
    _load_codebook(table, table_s)
    m_rows, n_cols = x.shape
    acc = cuda.local.array(GEMV_ROWS, float32)  # this thread's part of out[m, n]
    w = cuda.local.array(8, float32)  # one decoded group
    for m in range(m_rows):
        acc[m] = 0.0
    for g in range(t, n_cols // 8, THREADS):  # group g: weights (n, 8g..8g+7)
        first = n * n_cols + 8 * g  # flat index of weight (n, 8g), a multiple of 8
        word = read_group_cuda(packed, first // 8 * bits, bits)
        scale = scales[first // block]  # a group never straddles two blocks
        for s in range(8):
            w[s] = table_s[group_code_cuda(word, s, bits)] * scale
        for m in range(m_rows):  # each weight decoded once, used for every row of x
            part = float32(0.0)
            for s in range(8):
                part += w[s] * x[m, 8 * g + s]
            acc[m] += part
    for m in range(m_rows):
        scratch[m, t] = acc[m]
    block_reduce_rows(scratch, m_rows, SUM)  # all rows at once: the same few barriers
    if t < m_rows:
        out[t, n] = scratch[t, 0]


@cuda.jit
def _matmul_v3(x, packed, scales, table, bits, block, out):
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty  # row of x and out
    col = cuda.blockIdx.x * TILE + tx  # column of out = row of W
    w_row = cuda.blockIdx.x * TILE + ty  # the row of W this thread decodes
    m, n_cols = x.shape
    n_out = out.shape[1]
    table_s = cuda.shared.array(MAX_CODES, float32)
    x_s = cuda.shared.array((TILE, TILE), float32)  # x[rows of the block, k0:k0+TILE]
    w_s = cuda.shared.array((TILE, TILE), float32)  # w_s[k, c] = W[col0 + c, k0 + k]
    _load_codebook(table, table_s)
    acc = float32(0.0)
    for k0 in range(0, n_cols, TILE):
        x_s[ty, tx] = x[row, k0 + tx] if row < m and k0 + tx < n_cols else float32(0.0)
        w = float32(0.0)
        if w_row < n_out and k0 + tx < n_cols:
            i = w_row * n_cols + k0 + tx
            w = table_s[code_at_cuda(packed, i, bits)] * scales[i // block]
        w_s[tx, ty] = w
        cuda.syncthreads()
        for k in range(TILE):
            acc += x_s[ty, k] * w_s[k, tx]
        cuda.syncthreads()
    if row < m and col < n_out:
        out[row, col] = acc


def device_qt(qt):
    """The device copies (packed, scales, codebook) of a QuantizedTensor."""
    return (to_device(qt.packed), to_device(qt.scales), to_device(qt.codebook))


def matmul_device(x, qt, weights, version: str):
    """Device entry point: x device float32 (M, K), `weights` = the device (packed, scales,
    codebook) of qt -> new device array (M, N)."""
    m, n = x.shape[0], qt.shape[0]
    out = cuda.device_array((m, n), np.float32)
    args = (x, *weights, qt.bits, qt.block, out)
    if version == "v1":
        _matmul_v1[blocks(m * n, THREADS), THREADS](*args)
    elif version == "v2":
        for m0 in range(0, m, GEMV_ROWS):  # GEMV_ROWS rows of x (and out) per launch
            rows = slice(m0, m0 + GEMV_ROWS)
            _matmul_v2[n, THREADS](x[rows], *weights, qt.bits, qt.block, out[rows])
    else:
        _matmul_v3[(blocks(n, TILE), blocks(m, TILE)), (TILE, TILE)](*args)
    return out


def _run(version: str | None, x: np.ndarray, qt) -> np.ndarray:
    rows, lead = check_matmul(x, qt)  # (M, K)
    version = version or ("v2" if rows.shape[0] <= GEMV_ROWS else "v3")
    weights = on_device(qt, lambda: device_qt(qt))
    out = matmul_device(to_device(rows), qt, weights, version).copy_to_host()  # (M, N)
    return out.reshape(*lead, qt.shape[0])


def _version(version: str):
    def run(x: np.ndarray, qt) -> np.ndarray:
        return _run(version, x, qt)

    run.__name__ = run.__qualname__ = f"matmul_cuda_{version}"
    run.__doc__ = f"x (..., K) @ dequantize(qt).T -> (..., N) with CUDA version {version}."
    return run


MATMUL_VERSIONS = {name: _version(name) for name in ("v1", "v2", "v3")}


def matmul_cuda(x: np.ndarray, qt) -> np.ndarray:
    """x (..., K) @ dequantize(qt).T -> (..., N): v2 for up to GEMV_ROWS rows of x (decoding),
    else v3 (prefill)."""
    return _run(None, x, qt)
