"""The Numba CPU backward kernels (float32): same names and signatures as `minilm.backward`.

Taught in chapter 6 (training), after the NumPy references it is tested against:
  * attention_backward recomputes the attention weights from q and k, a block of 48 query
    rows at a time (as the FlashAttention backward does, in blocks), instead of keeping the
    (B, H, T, T) matrix from the forward, so the forward stays the inference kernel and memory
    stays O(T D) per head. Its five products (p and d_out v^T, then d_q, d_k, d_v) all run in
    the 6 x 16 register tiles of `microkernel.tile_product`, near the FMA units' peak; causal
    tiles that only hold masked entries are skipped. Each (batch, head) pair is one parallel
    work item that owns its d_k, d_v: no two threads write the same row, so no atomics, and
    the same sums in the same order on every run (resuming needs bit-identical steps).
  * layernorm_backward recomputes the row statistics from x; its d_gamma/d_beta sums run over
    fixed chunks of rows (partial sums per chunk, then added in order): deterministic whatever
    the number of threads.
  * gelu_backward and cross_entropy use the vectorised `fastexp` exponential.
  * linear_backward keeps the matrix products in BLAS and runs the two of them at the same time,
    each on half of the threads (`threads.matmul_pair`).
  * embedding_backward adds rows in one thread, in token order (a parallel scatter would race
    on tokens that repeat), which is fast enough: one pass over (B*T, C).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..backward import (
    check_attention,
    check_attention_out,
    check_cross_entropy,
    check_grad,
    check_layernorm,
    check_linear,
    check_tokens,
)
from .checks import float_array
from .fastexp import FASTMATH, exp_block, fast_exp
from .gelu import SQRT_2_OVER_PI
from .microkernel import COLS, ROWS, tile_product
from .softmax import softmax_row
from .threads import in_cpu_region, matmul_pair

__all__ = ["attention_backward", "cross_entropy", "embedding_backward", "gelu_backward",
           "layernorm_backward", "linear_backward"]

ROWS_PER_CHUNK = 64  # rows per LayerNorm work item (and per partial d_gamma/d_beta sum)
CHUNK = 1024  # elements per GELU work item
F32 = (np.float32,)


BLOCK_ROWS = 48  # query rows per block: 8 tiles of ROWS; the block's p, d_s are 48 x Tk floats
KEY_PAD = 48  # keys are padded to a multiple of both tile sizes (ROWS, COLS)
FLOAT = 4  # bytes per float32 (the micro-kernel takes byte strides)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _attention_backward(q, k, v, d_out, causal, d_q, d_k, d_v):
    """One (batch, head) group per parallel iteration, in blocks of BLOCK_ROWS query rows; all
    five products in `tile_product` register tiles. q, d_out (G, Tq, D); k, v (G, Tk, D).
    d_q (B, H, Tq, D), d_k, d_v (B, H, Tk, D), any strides: group g is (g // H, g % H).
    The group's inputs are first copied into zero-padded scratch (q pre-scaled, k and v also
    transposed): tiles that run past Tq, Tk or D then read zeros and write scratch."""
    groups, tq, d = q.shape
    heads, tk = d_k.shape[1], d_k.shape[2]
    dp = -(-d // COLS) * COLS  # D padded to whole tiles
    tk_pad = -(-tk // KEY_PAD) * KEY_PAD
    offset = tk - tq  # causal: query i sees keys j <= i + offset
    scale = np.float32(1.0 / math.sqrt(d))
    zero = np.float32(0.0)
    for g in prange(groups):
        b, h = g // heads, g % heads
        q_s = np.zeros((-(-tq // BLOCK_ROWS) * BLOCK_ROWS, dp), np.float32)  # q / sqrt(D)
        e = np.zeros_like(q_s)  # d_out
        for i in range(tq):
            for c in range(d):
                q_s[i, c] = q[g, i, c] * scale
                e[i, c] = d_out[g, i, c]
        k_rows = np.zeros((tk_pad, dp), np.float32)  # k
        k_t = np.zeros((d, tk_pad), np.float32)  # k transposed
        v_t = np.zeros((d, tk_pad), np.float32)  # v transposed
        for j in range(tk):
            for c in range(d):
                k_rows[j, c] = k[g, j, c]
                k_t[c, j] = k[g, j, c]
                v_t[c, j] = v[g, j, c]
        d_k_sum = np.zeros((tk_pad, dp), np.float32)  # d_k, summed over the query blocks
        d_v_sum = np.zeros((tk_pad, dp), np.float32)
        p = np.empty((BLOCK_ROWS, tk_pad), np.float32)  # scores, then weights
        d_s = np.empty((BLOCK_ROWS, tk_pad), np.float32)  # d_out . v, then dL/d(q k^T / sqrt(D))
        d_q_block = np.zeros((BLOCK_ROWS, dp), np.float32)
        for i0 in range(0, tq, BLOCK_ROWS):
            rows = min(BLOCK_ROWS, tq - i0)
            n_keys = min(tk, i0 + rows + offset) if causal else tk  # keys the block sees
            for r0 in range(0, rows, ROWS):  # p = q_s k^T, d_s = d_out v^T over the D terms
                tile_keys = min(n_keys, i0 + r0 + ROWS + offset) if causal else tk
                for j in range(0, tile_keys, COLS):
                    tile_product(q_s[i0 + r0].ctypes.data, dp * FLOAT, FLOAT,
                                 k_t[0, j:].ctypes.data, tk_pad * FLOAT, d,
                                 p[r0, j:].ctypes.data, tk_pad * FLOAT, 0)
                    tile_product(e[i0 + r0].ctypes.data, dp * FLOAT, FLOAT,
                                 v_t[0, j:].ctypes.data, tk_pad * FLOAT, d,
                                 d_s[r0, j:].ctypes.data, tk_pad * FLOAT, 0)
            for r in range(rows):  # softmax of each row over its keys, then d_s
                row_keys = i0 + r + offset + 1 if causal else tk
                p_r, d_s_r = p[r], d_s[r]
                softmax_row(p_r, p_r, row_keys)
                row_dot = zero  # sum_j p_j (d_out . v_j)
                for j in range(row_keys):
                    row_dot += p_r[j] * d_s_r[j]
                for j in range(row_keys):
                    d_s_r[j] = p_r[j] * (d_s_r[j] - row_dot)
                for j in range(row_keys, -(-n_keys // ROWS) * ROWS):  # masked: no weight
                    p_r[j] = zero
                    d_s_r[j] = zero
            for r0 in range(0, rows, ROWS):  # d_q = d_s k / sqrt(D) over the keys
                tile_keys = min(n_keys, i0 + r0 + ROWS + offset) if causal else tk
                for c0 in range(0, dp, COLS):
                    tile_product(d_s[r0].ctypes.data, tk_pad * FLOAT, FLOAT,
                                 k_rows[0, c0:].ctypes.data, dp * FLOAT, tile_keys,
                                 d_q_block[r0, c0:].ctypes.data, dp * FLOAT, 0)
            for r in range(rows):
                for c in range(d):
                    d_q[b, h, i0 + r, c] = d_q_block[r, c] * scale
            for j0 in range(0, n_keys, ROWS):  # d_k += d_s^T q_s, d_v += p^T d_out, over rows
                first = max(0, j0 - offset - i0) if causal else 0  # first row that sees j0..
                for c0 in range(0, dp, COLS):
                    tile_product(d_s[first, j0:].ctypes.data, FLOAT, tk_pad * FLOAT,
                                 q_s[i0 + first, c0:].ctypes.data, dp * FLOAT, rows - first,
                                 d_k_sum[j0, c0:].ctypes.data, dp * FLOAT, 1)
                    tile_product(p[first, j0:].ctypes.data, FLOAT, tk_pad * FLOAT,
                                 e[i0 + first, c0:].ctypes.data, dp * FLOAT, rows - first,
                                 d_v_sum[j0, c0:].ctypes.data, dp * FLOAT, 1)
        for j in range(tk):
            for c in range(d):
                d_k[b, h, j, c] = d_k_sum[j, c]
                d_v[b, h, j, c] = d_v_sum[j, c]


@in_cpu_region
def attention_backward(q, k, v, d_out, causal=True, out=None):
    """Numba version of `minilm.backward.attention_backward` (recomputes the weights)."""
    q, k, v = check_attention(q, k, v, causal, F32)
    d_out = check_grad("d_out", d_out, q)
    d_q, d_k, d_v = check_attention_out(out, q, k, (q, k, v, d_out))
    q3, d_out3 = q.reshape(-1, *q.shape[-2:]), d_out.reshape(-1, *q.shape[-2:])  # (G, Tq, D)
    k3, v3 = k.reshape(-1, *k.shape[-2:]), v.reshape(-1, *k.shape[-2:])  # (G, Tk, D)
    _attention_backward(q3, k3, v3, d_out3, bool(causal),
                        *(a if a.ndim == 4 else a[np.newaxis] for a in (d_q, d_k, d_v)))
    return d_q, d_k, d_v


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _layernorm_backward(x, gamma, d_y, eps, d_x, d_gamma_parts, d_beta_parts):
    rows, n = x.shape
    for chunk in prange(d_gamma_parts.shape[0]):
        d_gamma, d_beta = d_gamma_parts[chunk], d_beta_parts[chunk]
        for r in range(chunk * ROWS_PER_CHUNK, min(rows, (chunk + 1) * ROWS_PER_CHUNK)):
            row, d_row = x[r], d_y[r]
            mean = np.float32(0.0)
            for i in range(n):
                mean += row[i]
            mean /= n
            var = np.float32(0.0)
            for i in range(n):
                var += (row[i] - mean) * (row[i] - mean)
            inv_std = np.float32(1.0) / np.sqrt(var / n + eps)
            sum_dxhat = np.float32(0.0)
            sum_dxhat_xhat = np.float32(0.0)
            for i in range(n):
                xhat = (row[i] - mean) * inv_std
                d_xhat = d_row[i] * gamma[i]
                sum_dxhat += d_xhat
                sum_dxhat_xhat += d_xhat * xhat
                d_gamma[i] += d_row[i] * xhat
                d_beta[i] += d_row[i]
            mean_dxhat, mean_dxhat_xhat = sum_dxhat / n, sum_dxhat_xhat / n
            for i in range(n):
                xhat = (row[i] - mean) * inv_std
                d_x[r, i] = (d_row[i] * gamma[i] - mean_dxhat - xhat * mean_dxhat_xhat) * inv_std


@in_cpu_region
def layernorm_backward(x, gamma, d_y, eps=1e-5):
    """Numba version of `minilm.backward.layernorm_backward`: chunks of rows in parallel."""
    x, gamma, d_y, eps = check_layernorm(x, gamma, d_y, eps, F32)
    rows2d, d_rows = x.reshape(-1, x.shape[-1]), d_y.reshape(-1, x.shape[-1])  # (rows, C)
    n_chunks = -(-rows2d.shape[0] // ROWS_PER_CHUNK)
    d_x = np.empty_like(rows2d)
    parts = np.zeros((2, n_chunks, x.shape[-1]), np.float32)  # partial d_gamma, d_beta
    _layernorm_backward(rows2d, gamma, d_rows, np.float32(eps), d_x, parts[0], parts[1])
    d_gamma, d_beta = parts.sum(axis=1)  # (C,), (C,)
    return d_x.reshape(x.shape), d_gamma, d_beta


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _gelu_backward(x, d_y, d_x):
    n = x.shape[0]
    c = np.float32(SQRT_2_OVER_PI)
    a = np.float32(0.044715)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        start = chunk * CHUNK
        size = min(CHUNK, n - start)
        for i in range(size):  # 0.5 (1 + tanh u) = s = 1 / (1 + exp(-2u)); 1 - tanh^2 u = 4s(1-s)
            xi = x[start + i]
            s = np.float32(1.0) / (np.float32(1.0) + fast_exp(
                np.float32(-2.0) * c * (xi + a * xi * xi * xi)))
            slope = s + xi * np.float32(2.0) * s * (np.float32(1.0) - s) * c * (
                np.float32(1.0) + np.float32(3.0) * a * xi * xi)
            d_x[start + i] = d_y[start + i] * slope


@in_cpu_region
def gelu_backward(x, d_y):
    """Numba version of `minilm.backward.gelu_backward`."""
    x = float_array("x", x)
    d_y = check_grad("d_y", d_y, x)
    d_x = np.empty(x.size, np.float32)
    _gelu_backward(x.reshape(-1), d_y.reshape(-1), d_x)
    return d_x.reshape(x.shape)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _cross_entropy(logits, targets, scale, d_logits, losses):
    rows, n = logits.shape
    for r in prange(rows):
        row, d_row = logits[r], d_logits[r]
        m = row[0]
        for i in range(1, n):
            m = max(m, row[i])
        total = exp_block(row, m, d_row, n)
        losses[r] = np.log(total) + m - row[targets[r]]  # log-sum-exp minus the target's logit
        inv = scale / total
        for i in range(n):
            d_row[i] *= inv
        d_row[targets[r]] -= scale


@in_cpu_region
def cross_entropy(logits, targets):
    """Numba version of `minilm.backward.cross_entropy` (one row per parallel iteration)."""
    logits, targets = check_cross_entropy(logits, targets, F32)
    rows2d = logits.reshape(-1, logits.shape[-1])  # (N, V)
    d_logits = np.empty_like(rows2d)
    losses = np.empty(rows2d.shape[0], np.float32)
    _cross_entropy(rows2d, targets.reshape(-1), np.float32(1.0 / len(rows2d)), d_logits, losses)
    return float(losses.sum(dtype=np.float64) / len(rows2d)), d_logits.reshape(logits.shape)


@in_cpu_region
def linear_backward(x, w, d_y):
    """`minilm.backward.linear_backward` with the two products at the same time
    (`threads.matmul_pair`), float32."""
    x, w, d_y = check_linear(x, w, d_y, F32)
    rows, d_rows = x.reshape(-1, x.shape[-1]), d_y.reshape(-1, d_y.shape[-1])  # (M, K), (M, N)
    d_x, d_w = matmul_pair(d_rows, w.T, rows.T, d_rows)  # (M, K), (K, N)
    return d_x.reshape(x.shape), d_w, d_rows.sum(axis=0)  # (..., K), (K, N), (N,)


@njit(cache=True)
def _scatter_rows(tokens, d_out, d_table):
    for r in range(tokens.shape[0]):
        row, src = d_table[tokens[r]], d_out[r]
        for c in range(src.shape[0]):
            row[c] += src[c]


def embedding_backward(tokens, d_out, vocab_size: int):
    """Numba version of `minilm.backward.embedding_backward`."""
    d_out = float_array("d_out", d_out)
    tokens = check_tokens("tokens", tokens, d_out.shape[:-1], vocab_size)
    d_table = np.zeros((vocab_size, d_out.shape[-1]), np.float32)  # (V, C)
    _scatter_rows(tokens.reshape(-1), d_out.reshape(-1, d_out.shape[-1]), d_table)
    return d_table
