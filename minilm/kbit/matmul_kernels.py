"""Numba k-bit matmul kernels, versions v1, v2, v3 (chapter 9).

The spec is `matmul_reference` in matmul.py (dequantize, then `@`); the public wrappers there
check every argument before these run. Shapes: x rows (M, K), weight (N, K) packed, out (M, N).
v1 and v2 decode each weight once and use it for all M rows of x (decoding, not multiplying, is
the expensive part); all versions run output rows n in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..kernels.fastexp import FASTMATH
from ..kernels.threads import in_cpu_region
from ..kernels.threads import matmul as blas_matmul
from . import simd
from .pack import code_at, group_code, read_group

code_at_jit = njit(inline="always")(code_at)
read_group_jit = njit(inline="always")(read_group)
group_code_jit = njit(inline="always")(group_code)

# Up to GEMV_ROWS rows of x, v3 runs its vector GEMV once per row: cheaper than decoding tiles
# of W to float32 for BLAS (about 1 ns per weight), which pays off for longer prefills.
GEMV_ROWS = 8
TILE_VALUES = 2**18  # weights decoded per GEMM tile (1 MiB of float32: stays in cache)
PARALLEL_MIN = 2**16  # tiles smaller than this are decoded in the calling thread


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _matmul_v1(x, packed, scales, table, bits, block, out):
    n_x, n_cols = x.shape
    for n in prange(out.shape[1]):
        for j in range(n_cols):
            i = n * n_cols + j  # flat index of weight (n, j)
            w = table[code_at_jit(packed, i, bits)] * scales[i // block]
            for m in range(n_x):
                out[m, n] += w * x[m, j]


@njit(inline="always")
def _decode(packed, first, count, bits, table, scale, buf):
    """buf[:count] = table[code] * scale for codes first.. (first, count multiples of 8)."""
    start = first // 8 * bits  # 8 codes fill k bytes
    for g in range(count // 8):
        word = read_group_jit(packed, start + g * bits, bits)
        for s in range(8):
            buf[8 * g + s] = table[group_code_jit(word, s, bits)] * scale


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _matmul_v2(x, packed, scales, table, bits, block, out):
    n_x, n_cols = x.shape
    segment = min(block, n_cols)  # values under one scale within a row
    for n in prange(out.shape[1]):
        buf = np.empty(segment, np.float32)
        for start in range(0, n_cols, segment):
            first = n * n_cols + start
            _decode(packed, first, segment, bits, table, scales[first // block], buf)
            for m in range(n_x):
                acc = np.float32(0.0)
                for j in range(segment):
                    acc += buf[j] * x[m, start + j]
                out[m, n] += acc


@njit(inline="always")
def _decode_rows(packed, scales, table, bits, block, first_row, out):
    n_cols = out.shape[1]  # out (T, K): weight rows first_row.. decoded
    segment = min(block, n_cols)
    for r in prange(out.shape[0]):
        for start in range(0, n_cols, segment):
            first = (first_row + r) * n_cols + start
            _decode(packed, first, segment, bits, table, scales[first // block],
                    out[r, start:start + segment])


@njit(parallel=True, cache=True)
def _decode_rows_parallel(packed, scales, table, bits, block, first_row, out):
    _decode_rows(packed, scales, table, bits, block, first_row, out)


@njit(cache=True)
def _decode_rows_serial(packed, scales, table, bits, block, first_row, out):
    _decode_rows(packed, scales, table, bits, block, first_row, out)


def _weights(qt) -> tuple:
    return qt.packed, qt.scales, qt.codebook, qt.bits, qt.block


def matmul_v1(rows: np.ndarray, qt) -> np.ndarray:
    """Naive decode: code i is cut out of bits [i*k, (i+1)*k) of the stream, one at a time."""
    out = np.zeros((rows.shape[0], qt.shape[0]), np.float32)  # (M, N)
    _matmul_v1(rows, *_weights(qt), out)
    return out


def matmul_v2(rows: np.ndarray, qt) -> np.ndarray:
    """LUT: whole groups of 8 codes decoded through the codebook into a block buffer."""
    out = np.zeros((rows.shape[0], qt.shape[0]), np.float32)  # (M, N)
    _matmul_v2(rows, *_weights(qt), out)
    return out


@in_cpu_region  # BLAS single-threaded, so that it does not fight Numba's threads
def _gemm_tiles(rows: np.ndarray, qt) -> np.ndarray:
    n_rows, n_cols = qt.shape
    tile = max(1, TILE_VALUES // n_cols)  # weight rows per tile
    buf = np.empty((min(tile, n_rows), n_cols), np.float32)  # (T, K)
    out = np.empty((rows.shape[0], n_rows), np.float32)  # (M, N)
    for first in range(0, n_rows, tile):
        t = min(tile, n_rows - first)
        decode = _decode_rows_parallel if t * n_cols >= PARALLEL_MIN else _decode_rows_serial
        decode(*_weights(qt), first, buf[:t])
        out[:, first:first + t] = blas_matmul(rows, buf[:t].T)  # (M, K) @ (K, T)
    return out


def matmul_v3(rows: np.ndarray, qt) -> np.ndarray:
    """Fast: GEMV in vector registers (simd.py) for up to GEMV_ROWS rows, else decoded tiles of
    W times BLAS (prefill). Falls back to v2 where simd.py does not apply (or x is not finite)."""
    if rows.shape[0] <= GEMV_ROWS and simd.supports(qt):
        out = np.empty((rows.shape[0], qt.shape[0]), np.float32)  # (M, N)
        if all(simd.gemv(row, qt, out_row) for row, out_row in zip(rows, out, strict=True)):
            return out
    if rows.shape[0] <= GEMV_ROWS:
        return matmul_v2(rows, qt)
    return _gemm_tiles(rows, qt)
