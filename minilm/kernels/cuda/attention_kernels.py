"""Scaled dot-product attention on the GPU (chapter 11: GPUs with numba.cuda; the maths and the
bottom-right causal mask are chapter 3's `attention_reference`).

    q (G, Tq, D), k and v (G, Tk, D) with G = H or B*H groups; out (G, Tq, D)

Numbered for the chapter (`ATTENTION_VERSIONS`):
  v1  one thread per output row: a pass over the row's keys for the maximum score, then a
      second pass adds exp(score - max) * v into the output row (scores are computed twice
      instead of stored: a thread has no room for Tk of them); every thread reads all of k and v
      from global memory on its own;
  v2  a block of BLOCK_Q threads takes BLOCK_Q consecutive query rows of one group and walks
      the keys in tiles of BLOCK_K: the block copies a tile of k and v into shared memory
      together (coalesced), and each thread scores its row against the tile and folds it into
      its output with an *online softmax* (running max and sum, as FlashAttention), so k and v
      are read from global memory once per block instead of once per row. A thread keeps its
      query and output row in local arrays of MAX_D floats, so v2 needs D <= MAX_D.
`attention` runs v2, or v1 for a few query rows (decoding) or heads wider than MAX_D.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ..attention import FEW_QUERY_ROWS, check_qkv
from .device import SIMULATOR, THREADS, blocks, to_device

BLOCK_Q = 8 if SIMULATOR else 32  # query rows (threads) per block, v2: 32 keeps every SM busy
BLOCK_K = 32  # keys per shared-memory tile, v2
MAX_D = 128  # the widest head v2 handles (local arrays need a size known at compile time)


@cuda.jit
def _attention_v1(q, k, v, causal, out):
    row = cuda.grid(1)  # one thread per (group, query row)
    groups, tq, d = q.shape
    tk = k.shape[1]
    if row >= groups * tq:
        return
    g, i = row // tq, row % tq
    n_keys = i + tk - tq + 1 if causal else tk  # query i sees keys j <= i + (Tk - Tq)
    scale = float32(1.0) / math.sqrt(float32(d))
    m = float32(-math.inf)
    for j in range(n_keys):
        s = float32(0.0)
        for c in range(d):
            s += q[g, i, c] * k[g, j, c]
        m = max(m, s * scale)
    for c in range(d):
        out[g, i, c] = 0.0
    total = float32(0.0)
    for j in range(n_keys):
        s = float32(0.0)
        for c in range(d):
            s += q[g, i, c] * k[g, j, c]
        p = math.exp(s * scale - m)
        total += p
        for c in range(d):
            out[g, i, c] += p * v[g, j, c]
    for c in range(d):
        out[g, i, c] /= total


@cuda.jit
def _attention_v2(q, k, v, causal, out):
    a, g = cuda.threadIdx.x, cuda.blockIdx.y  # thread a: query row i of group g
    i = cuda.blockIdx.x * BLOCK_Q + a
    tq, d = q.shape[1], q.shape[2]
    tk = k.shape[1]
    offset = tk - tq  # causal: query i sees keys j <= i + offset
    k_s = cuda.shared.array((BLOCK_K, MAX_D), float32)  # a tile of keys, shared by the block
    v_s = cuda.shared.array((BLOCK_K, MAX_D), float32)
    q_row = cuda.local.array(MAX_D, float32)  # this thread's query, pre-scaled
    acc = cuda.local.array(MAX_D, float32)  # its unnormalised output row
    s = cuda.local.array(BLOCK_K, float32)  # its scores against the tile
    active = i < tq  # threads past the last row only help to load tiles
    scale = float32(1.0) / math.sqrt(float32(d))
    for c in range(d):
        q_row[c] = q[g, i, c] * scale if active else float32(0.0)
        acc[c] = 0.0
    row_max = float32(-math.inf)
    row_sum = float32(0.0)
    last_row = min(tq, (cuda.blockIdx.x + 1) * BLOCK_Q) - 1
    key_end = min(tk, last_row + offset + 1) if causal else tk  # keys any row here needs
    my_end = min(tk, i + offset + 1) if causal else tk
    for j0 in range(0, key_end, BLOCK_K):
        n_tile = min(BLOCK_K, key_end - j0)
        for e in range(a, n_tile * d, BLOCK_Q):  # neighbouring threads, neighbouring floats
            b, c = e // d, e % d
            k_s[b, c] = k[g, j0 + b, c]
            v_s[b, c] = v[g, j0 + b, c]
        cuda.syncthreads()  # the tile is complete
        n_valid = min(n_tile, my_end - j0) if active else 0
        if n_valid > 0:
            tile_max = row_max
            for b in range(n_valid):
                dot = float32(0.0)
                for c in range(d):
                    dot += q_row[c] * k_s[b, c]
                s[b] = dot
                tile_max = max(tile_max, dot)
            correction = math.exp(row_max - tile_max)  # rescales what was summed so far
            row_sum *= correction
            for c in range(d):
                acc[c] *= correction
            for b in range(n_valid):
                p = math.exp(s[b] - tile_max)
                row_sum += p
                for c in range(d):
                    acc[c] += p * v_s[b, c]
            row_max = tile_max
        cuda.syncthreads()  # everyone is done with the tile before the next one is loaded
    if active:
        for c in range(d):
            out[g, i, c] = acc[c] / row_sum


def attention_device(q, k, v, causal, version):
    """Device entry point: q (G, Tq, D), k, v (G, Tk, D) device float32 -> new device (G, Tq,
    D). The caller checks the arguments (v2: D <= MAX_D)."""
    out = cuda.device_array_like(q)
    groups, tq, _ = q.shape
    if version == "v1":
        _attention_v1[blocks(groups * tq, THREADS), THREADS](q, k, v, bool(causal), out)
    else:
        _attention_v2[(blocks(tq, BLOCK_Q), groups), BLOCK_Q](q, k, v, bool(causal), out)
    return out


def _run(version, q, k, v, causal):
    q, k, v = check_qkv(q, k, v, causal, (np.float32,))
    if version == "v2" and q.shape[-1] > MAX_D:
        raise ValueError(f"attention v2 on the cuda backend needs a head dim D <= {MAX_D}, "
                         f"got D={q.shape[-1]} (use version v1, or `attention`)")
    q3, k3, v3 = (a.reshape(-1, *a.shape[-2:]) for a in (q, k, v))  # (G, T, D)
    out = attention_device(to_device(q3), to_device(k3), to_device(v3), causal, version)
    return out.copy_to_host().reshape(q.shape)


def attention_cuda_v1(q, k, v, causal=True):
    """v1: one thread per output row, scores computed twice, all reads from global memory."""
    return _run("v1", q, k, v, causal)


def attention_cuda_v2(q, k, v, causal=True):
    """v2: tiles of k and v in shared memory, online softmax, one thread per query row."""
    return _run("v2", q, k, v, causal)


ATTENTION_VERSIONS = {"v1": attention_cuda_v1, "v2": attention_cuda_v2}


def attention(q, k, v, causal=True):
    """`attention_reference` on the GPU: v2, or v1 for fewer than FEW_QUERY_ROWS query rows
    (a v2 block would be almost idle) or heads wider than MAX_D."""
    few_rows = isinstance(q, np.ndarray) and q.ndim >= 2 and q.shape[-2] < FEW_QUERY_ROWS
    wide = isinstance(q, np.ndarray) and q.ndim >= 1 and q.shape[-1] > MAX_D
    return _run("v1" if few_rows or wide else "v2", q, k, v, causal)
