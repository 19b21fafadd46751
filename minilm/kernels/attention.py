"""Scaled dot-product attention: the NumPy reference and the Numba CPU kernels.

Taught in chapter 3 (attention):
    attention(q, k, v) = softmax(q k^T / sqrt(D) + mask) v

q (..., Tq, D), k and v (..., Tk, D) with leading axes (H,) or (B, H). Usually Tq == Tk; during
decoding with a KV cache the new queries are the *last* Tq positions of the Tk keys, so the
causal mask lets query i see keys j <= i + (Tk - Tq) (the mask is aligned bottom-right).

The CPU versions are numbered for the chapter and the benchmarks (`ATTENTION_VERSIONS`):
  v1  one query row per parallel iteration: all scores of the row, exact softmax, then p @ v;
  v2  a block of query rows against a block of keys at a time with an *online* softmax
      (running max and sum, as FlashAttention): scratch is O(block) per thread, never O(T^2),
      and the exponentials are vectorised (`fastexp`);
  v3  v2 with both products, the scores q k^T and p @ v, in the 6 x 16 register tiles of
      `microkernel.tile_product` (a BLAS-style micro-kernel, which chapter 6 explains): every
      vector loaded feeds several FMAs and partial sums never go through memory; blocks of 48
      query rows, k transposed once; causal work is balanced over the threads by pairing a
      cheap query block with an expensive one.
`attention_cpu` runs v3, or v1 for a few query rows (decoding one token at a time).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array, same_dtype
from .fastexp import FASTMATH, exp_block, fast_exp
from .microkernel import COLS, ROWS, tile_product
from .softmax import softmax_reference


def check_qkv(q, k, v, causal, dtypes):
    """Validate attention inputs (also used by the backward pass); returns contiguous q, k, v."""
    q = float_array("q", q, ndims=(3, 4), dtypes=dtypes)
    k = float_array("k", k, ndims=(3, 4), dtypes=dtypes)
    v = float_array("v", v, ndims=(3, 4), dtypes=dtypes)
    same_dtype(q=q, k=k, v=v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {k.shape} and v {v.shape}")
    if q.ndim != k.ndim or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q must be (..., Tq, D) and k, v (..., Tk, D) with the same leading axes and D, "
            f"got q {q.shape} and k {k.shape}"
        )
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if causal and q.shape[-2] > k.shape[-2]:
        raise ValueError(
            f"causal attention needs Tq <= Tk (queries are the last Tq positions), "
            f"got Tq={q.shape[-2]} and Tk={k.shape[-2]}"
        )
    return q, k, v


def attention_probs(q, k, causal=True):
    """The attention weights softmax(q k^T / sqrt(D) + mask): (..., Tq, Tk). For plots."""
    d = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) * q.dtype.type(1.0 / math.sqrt(d))  # (..., Tq, Tk)
    if causal:
        tq, tk = scores.shape[-2:]
        future = np.arange(tk)[None, :] > np.arange(tq)[:, None] + (tk - tq)  # (Tq, Tk)
        scores = np.where(future, -np.inf, scores)
    return softmax_reference(scores)


def attention_reference(q, k, v, causal=True):
    """softmax(q k^T / sqrt(D) + causal mask) v, materialising the (..., Tq, Tk) weights."""
    q, k, v = check_qkv(q, k, v, causal, FLOAT_DTYPES)
    return attention_probs(q, k, causal) @ v  # (..., Tq, D)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _attention_v1(q, k, v, causal, out):
    groups, tq, d = q.shape
    tk = k.shape[1]
    scale = np.float32(1.0 / math.sqrt(d))
    for row in prange(groups * tq):
        g, i = row // tq, row % tq
        n_keys = i + tk - tq + 1 if causal else tk
        scores = np.empty(n_keys, np.float32)
        m = -np.inf
        for j in range(n_keys):
            s = np.float32(0.0)
            for c in range(d):
                s += q[g, i, c] * k[g, j, c]
            scores[j] = s * scale
            m = max(m, scores[j])
        total = np.float32(0.0)
        for j in range(n_keys):
            scores[j] = np.exp(scores[j] - m)
            total += scores[j]
        acc = np.zeros(d, np.float32)
        for j in range(n_keys):
            for c in range(d):
                acc[c] += scores[j] * v[g, j, c]
        for c in range(d):
            out[g, i, c] = acc[c] / total


BLOCK_Q = 16  # query rows per work item (v2)
BLOCK_K = 64  # keys per inner block (v2)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _attention_v2(q, k_t, v, causal, out):
    groups, tq, d = q.shape
    tk = k_t.shape[2]
    offset = tk - tq
    scale = np.float32(1.0 / math.sqrt(d))
    q_blocks = (tq + BLOCK_Q - 1) // BLOCK_Q
    for job in prange(groups * q_blocks):
        g, qb = job // q_blocks, job % q_blocks
        i0 = qb * BLOCK_Q
        nq = min(BLOCK_Q, tq - i0)
        q_scaled = np.empty((BLOCK_Q, d), np.float32)
        for a in range(nq):
            for c in range(d):
                q_scaled[a, c] = q[g, i0 + a, c] * scale
        row_max = np.full(BLOCK_Q, -np.inf, np.float32)
        row_sum = np.zeros(BLOCK_Q, np.float32)
        acc = np.zeros((BLOCK_Q, d), np.float32)
        s = np.empty(BLOCK_K, np.float32)
        key_end = min(tk, i0 + nq + offset) if causal else tk
        for j0 in range(0, key_end, BLOCK_K):
            j1 = min(j0 + BLOCK_K, key_end)
            for a in range(nq):
                n_keys = min(j1, i0 + a + offset + 1) - j0 if causal else j1 - j0
                if n_keys <= 0:
                    continue
                for b in range(n_keys):
                    s[b] = 0.0
                for c in range(d):  # s = q_a . k_j for the block, as axpys over contiguous k^T
                    qc = q_scaled[a, c]
                    k_row = k_t[g, c, j0:j0 + n_keys]
                    for b in range(n_keys):
                        s[b] += qc * k_row[b]
                m_new = row_max[a]
                for b in range(n_keys):
                    m_new = max(m_new, s[b])
                correction = np.exp(row_max[a] - m_new)  # rescale what was summed so far
                row_sum[a] = row_sum[a] * correction + exp_block(s, m_new, s, n_keys)
                row_max[a] = m_new
                acc_a = acc[a]
                for c in range(d):
                    acc_a[c] *= correction
                for b in range(n_keys):
                    p = s[b]
                    v_row = v[g, j0 + b]
                    for c in range(d):
                        acc_a[c] += p * v_row[c]
        for a in range(nq):
            inv = np.float32(1.0) / row_sum[a]
            for c in range(d):
                out[g, i0 + a, c] = acc[a, c] * inv


BLOCK_Q3 = 48  # query rows per block (v3): 8 tiles of ROWS
BLOCK_K3 = 256  # keys per block (v3): the scores s of a block take 48 x 256 x 4 B = 48 KiB
FLOAT = 4  # bytes per float32 (the micro-kernel takes byte strides)


@njit(fastmath=FASTMATH, cache=True)
def _attend_block(q_g, kt_g, v_g, tk, qb, causal, out_g):
    """Query block qb of one group: q_g (Tq, D), kt_g (D, Tk rounded up to COLS), v_g (Tk, Dp:
    D rounded up to COLS); tk: the number of keys. Both products in `tile_product` tiles."""
    tq, d = q_g.shape
    i0 = qb * BLOCK_Q3
    nq = min(BLOCK_Q3, tq - i0)
    dp, kt_stride = v_g.shape[1], kt_g.shape[1] * FLOAT
    offset = tk - tq  # causal: query i sees keys j <= i + offset
    scale = np.float32(1.0 / math.sqrt(d))
    q_s = np.zeros((BLOCK_Q3, d), np.float32)  # the block's queries, pre-scaled
    for a in range(nq):
        for c in range(d):
            q_s[a, c] = q_g[i0 + a, c] * scale
    row_max = np.full(BLOCK_Q3, -np.inf, np.float32)
    row_sum = np.zeros(BLOCK_Q3, np.float32)
    acc = np.zeros((BLOCK_Q3, dp), np.float32)  # unnormalised output rows
    s = np.empty((BLOCK_Q3, BLOCK_K3), np.float32)  # scores, then probabilities (tiles write
    # every entry that a later tile reads, also in the rows past nq)
    key_end = min(tk, i0 + nq + offset) if causal else tk
    for j0 in range(0, key_end, BLOCK_K3):
        nk = min(BLOCK_K3, key_end - j0)
        # s = q_s k^T, one tile of 6 queries x 16 keys at a time over the D terms, skipping
        # tiles of masked keys; keys past Tk are zero columns of kt_g, masked below
        for r0 in range(0, nq, ROWS):
            tile_keys = min(nk, i0 + r0 + ROWS + offset - j0) if causal else nk
            for b in range(0, tile_keys, COLS):
                tile_product(q_s[r0].ctypes.data, d * FLOAT, FLOAT,
                             kt_g[0, j0 + b:].ctypes.data, kt_stride, d,
                             s[r0, b:].ctypes.data, BLOCK_K3 * FLOAT, 0)
        # online softmax, row by row: keys past the row's causal limit get probability 0,
        # and what was summed so far is rescaled to the new row maximum
        for a in range(nq):
            s_a = s[a]
            n_valid = max(0, min(nk, i0 + a + offset + 1 - j0)) if causal else nk
            m_new = row_max[a]
            for b in range(n_valid):
                m_new = max(m_new, s_a[b])
            correction = fast_exp(row_max[a] - m_new)  # 0 for the first block (-inf)
            row_sum[a] = row_sum[a] * correction + exp_block(s_a, m_new, s_a, n_valid)
            row_max[a] = m_new
            for b in range(n_valid, nk):
                s_a[b] = 0.0
            for c in range(dp):
                acc[a, c] *= correction
        # acc += p v, one tile of 6 queries x 16 output columns at a time over the keys
        for r0 in range(0, nq, ROWS):
            tile_keys = min(nk, i0 + r0 + ROWS + offset - j0) if causal else nk
            for c0 in range(0, dp, COLS):
                tile_product(s[r0].ctypes.data, BLOCK_K3 * FLOAT, FLOAT,
                             v_g[j0, c0:].ctypes.data, dp * FLOAT, max(0, tile_keys),
                             acc[r0, c0:].ctypes.data, dp * FLOAT, 1)
    for a in range(nq):
        inv = np.float32(1.0) / row_sum[a]
        out_a, acc_a = out_g[i0 + a], acc[a]
        for c in range(d):
            out_a[c] = acc_a[c] * inv


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _attention_v3(q, kt, v, tk, causal, out):
    groups, tq, _ = q.shape
    q_blocks = (tq + BLOCK_Q3 - 1) // BLOCK_Q3
    pairs = (q_blocks + 1) // 2
    # causal: block qb costs ~qb + 1, so job p takes blocks p and q_blocks-1-p: equal costs,
    # and prange's equal split of the jobs gives each thread the same amount of work
    for job in prange(groups * pairs):
        g, p = job // pairs, job % pairs
        _attend_block(q[g], kt[g], v[g], tk, p, causal, out[g])
        if q_blocks - 1 - p != p:  # the middle block of an odd count has no partner
            _attend_block(q[g], kt[g], v[g], tk, q_blocks - 1 - p, causal, out[g])


@njit(parallel=True, cache=True)
def _k_tiles_transposed(k):
    """(G, Tk, D) -> (G, D, Tk rounded up to COLS): kt[g, c, j] = k[g, j, c], zero-padded."""
    groups, tk, d = k.shape
    kt = np.zeros((groups, d, (tk + COLS - 1) // COLS * COLS), np.float32)
    for g in prange(groups):
        for c in range(d):  # write each row of kt contiguously
            for j in range(tk):
                kt[g, c, j] = k[g, j, c]
    return kt


def _v_columns_padded(v):
    """(G, Tk, D) -> (G, Tk, D rounded up to COLS), zero-padded (v itself when D fits)."""
    d = v.shape[-1]
    if d % COLS == 0:
        return v
    padded = np.zeros((*v.shape[:-1], -(-d // COLS) * COLS), np.float32)
    padded[..., :d] = v
    return padded


def _transpose_k(k, v):
    return np.ascontiguousarray(np.swapaxes(k, 1, 2)), v  # k (G, D, Tk)


def _v3_layout(k, v):
    """k (G, D, Tk rounded up to COLS), v (G, Tk, D rounded up to COLS), the number of keys."""
    return _k_tiles_transposed(k), _v_columns_padded(v), k.shape[1]


def _run(kernel, q, k, v, causal, layout=None):
    q, k, v = check_qkv(q, k, v, causal, (np.float32,))
    lead = q.shape[:-2]
    q3 = q.reshape(-1, *q.shape[-2:])  # (G, Tq, D), G = H or B*H
    k3 = k.reshape(-1, *k.shape[-2:])  # (G, Tk, D)
    v3 = v.reshape(-1, *v.shape[-2:])  # (G, Tk, D)
    keys_and_values = (k3, v3) if layout is None else layout(k3, v3)
    out = np.empty_like(q3)
    kernel(q3, *keys_and_values, bool(causal), out)
    return out.reshape(*lead, *q.shape[-2:])


def attention_cpu_v1(q, k, v, causal=True):
    """v1: one query row per parallel iteration, exact softmax over the row's scores."""
    return _run(_attention_v1, q, k, v, causal)


def attention_cpu_v2(q, k, v, causal=True):
    """v2: query blocks x key blocks with an online softmax and a vectorised exp."""
    return _run(_attention_v2, q, k, v, causal, layout=_transpose_k)


def attention_cpu_v3(q, k, v, causal=True):
    """v3: v2 with both products in 6 x 16 register tiles (a micro-kernel), balanced threads."""
    return _run(_attention_v3, q, k, v, causal, layout=_v3_layout)


ATTENTION_VERSIONS = {"v1": attention_cpu_v1, "v2": attention_cpu_v2, "v3": attention_cpu_v3}

# Decoding with a KV cache sends 1 query row against Tk keys: v3 has no rows to share its loads
# across and its transposed copy of v costs more than the whole of v1's work.
FEW_QUERY_ROWS = 4


def attention_cpu(q, k, v, causal=True):
    """The fastest CPU version for the shape: v1 below FEW_QUERY_ROWS query rows, else v3."""
    few_rows = isinstance(q, np.ndarray) and q.ndim >= 2 and q.shape[-2] < FEW_QUERY_ROWS
    return (attention_cpu_v1 if few_rows else attention_cpu_v3)(q, k, v, causal)
