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
  v3  both products in register tiles, so that every loaded vector feeds several FMAs: the
      scores q k^T as 8 queries x 8 keys held in vector registers over all of D (k transposed
      once; `score_tiles.score_tile`, which chapter 6 explains), p @ v as 2x4 tiles of dot
      products over the keys (v transposed once); causal work is balanced over the threads by
      pairing a cheap query block with an expensive one.
`attention_cpu` runs v3, or v1 for a few query rows (decoding one token at a time).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array, same_dtype
from .fastexp import FASTMATH, exp_block
from .score_tiles import ROWS, TILE, score_tile
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


BLOCK_Q3 = 32  # query rows per block (v3)
BLOCK_K3 = 256  # keys per block (v3): the scores s of a block take 32 x 256 x 4 B = 32 KiB (L1)


@njit(fastmath=FASTMATH)
def _dot_2x4(a0, a1, b0, b1, b2, b3, n):
    """The 8 dot products of rows a0, a1 with rows b0..b3 over their first n entries (v3's
    p @ v: rows of probabilities with rows of v^T, n = keys of the block).

    LLVM vectorises the loop over c, 8 floats at a time: the 8 sums live in 8 vector registers,
    each step loads 6 vectors and does 8 fused multiply-adds, and each sum is added up across
    its 8 lanes once, after the loop. Both operands must be contiguous along c.
    """
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.float32(0.0)
    for c in range(n):
        s00 += a0[c] * b0[c]
        s01 += a0[c] * b1[c]
        s02 += a0[c] * b2[c]
        s03 += a0[c] * b3[c]
        s10 += a1[c] * b0[c]
        s11 += a1[c] * b1[c]
        s12 += a1[c] * b2[c]
        s13 += a1[c] * b3[c]
    return s00, s01, s02, s03, s10, s11, s12, s13


@njit(fastmath=FASTMATH, cache=True)
def _attend_block(q_g, kt_g, vt_g, tk, qb, causal, out_g):
    """Query block qb of one group: q_g (Tq, D), kt_g (D, Tk rounded up to TILE), vt_g
    (Tk/BK, Dp, BK); tk: the number of keys."""
    tq, d = q_g.shape
    i0 = qb * BLOCK_Q3
    nq = min(BLOCK_Q3, tq - i0)
    dp = vt_g.shape[1]  # D rounded up to a multiple of 4
    offset = tk - tq  # causal: query i sees keys j <= i + offset
    nq2 = nq + nq % 2  # rows in pairs: an odd block gets one zero row, never written out
    scale = np.float32(1.0 / math.sqrt(d))
    q_s = np.zeros((BLOCK_Q3, d), np.float32)  # the block's queries, pre-scaled
    for a in range(nq):
        for c in range(d):
            q_s[a, c] = q_g[i0 + a, c] * scale
    row_max = np.full(BLOCK_Q3, -np.inf, np.float32)
    row_sum = np.zeros(BLOCK_Q3, np.float32)
    correction = np.empty(BLOCK_Q3, np.float32)
    acc = np.zeros((BLOCK_Q3, dp), np.float32)  # unnormalised output rows
    s = np.empty((BLOCK_Q3, BLOCK_K3), np.float32)  # scores, then probabilities
    key_end = min(tk, i0 + nq + offset) if causal else tk
    for j0 in range(0, key_end, BLOCK_K3):
        nk = min(BLOCK_K3, key_end - j0)
        nk8 = min(BLOCK_K3, (nk + 7) // 8 * 8)  # p @ v sums whole vectors of 8 keys
        # s = q_s k^T in register tiles of 8 queries x 8 keys (two 4-row halves per call);
        # keys past Tk are zero columns of kt_g, their scores are masked below
        for b in range(0, nk, TILE):
            keys = kt_g[0, j0 + b:].ctypes.data
            for a in range(0, nq, 2 * ROWS):
                score_tile(q_s[a].ctypes.data, q_s[a + ROWS].ctypes.data, keys, keys, d,
                           4 * kt_g.shape[1], s[a, b:].ctypes.data, s[a + ROWS, b:].ctypes.data,
                           4 * BLOCK_K3)
        # online softmax, row by row: keys past the row's causal limit get probability 0
        for a in range(nq2):
            s_a = s[a]
            n_valid = max(0, min(nk, i0 + a + offset + 1 - j0)) if causal else nk
            m_new = row_max[a]
            for b in range(n_valid):
                m_new = max(m_new, s_a[b])
            correction[a] = np.exp(row_max[a] - m_new)  # rescales what was summed so far
            row_sum[a] = row_sum[a] * correction[a] + exp_block(s_a, m_new, s_a, n_valid)
            row_max[a] = m_new
            for b in range(n_valid, nk8):
                s_a[b] = 0.0
        # acc = acc * correction + p @ v: tiles of 2 queries x 4 output columns
        vt_b = vt_g[j0 // BLOCK_K3]  # (Dp, BK): row c holds column c of this block's v
        for c in range(0, dp, 4):
            v0, v1, v2, v3 = vt_b[c], vt_b[c + 1], vt_b[c + 2], vt_b[c + 3]
            for a in range(0, nq2, 2):
                t = _dot_2x4(s[a], s[a + 1], v0, v1, v2, v3, nk8)
                acc_0, acc_1 = acc[a], acc[a + 1]
                r0, r1 = correction[a], correction[a + 1]
                acc_0[c] = acc_0[c] * r0 + t[0]
                acc_0[c + 1] = acc_0[c + 1] * r0 + t[1]
                acc_0[c + 2] = acc_0[c + 2] * r0 + t[2]
                acc_0[c + 3] = acc_0[c + 3] * r0 + t[3]
                acc_1[c] = acc_1[c] * r1 + t[4]
                acc_1[c + 1] = acc_1[c + 1] * r1 + t[5]
                acc_1[c + 2] = acc_1[c + 2] * r1 + t[6]
                acc_1[c + 3] = acc_1[c + 3] * r1 + t[7]
    for a in range(nq):
        inv = np.float32(1.0) / row_sum[a]
        out_a, acc_a = out_g[i0 + a], acc[a]
        for c in range(d):
            out_a[c] = acc_a[c] * inv


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _attention_v3(q, kt, vt, tk, causal, out):
    groups, tq, _ = q.shape
    q_blocks = (tq + BLOCK_Q3 - 1) // BLOCK_Q3
    pairs = (q_blocks + 1) // 2
    # causal: block qb costs ~qb + 1, so job p takes blocks p and q_blocks-1-p: equal costs,
    # and prange's equal split of the jobs gives each thread the same amount of work
    for job in prange(groups * pairs):
        g, p = job // pairs, job % pairs
        _attend_block(q[g], kt[g], vt[g], tk, p, causal, out[g])
        if q_blocks - 1 - p != p:  # the middle block of an odd count has no partner
            _attend_block(q[g], kt[g], vt[g], tk, q_blocks - 1 - p, causal, out[g])


@njit(parallel=True, cache=True)
def _k_tiles_transposed(k):
    """(G, Tk, D) -> (G, D, Tk rounded up to TILE): kt[g, c, j] = k[g, j, c], zero-padded."""
    groups, tk, d = k.shape
    kt = np.zeros((groups, d, (tk + TILE - 1) // TILE * TILE), np.float32)
    for g in prange(groups):
        for c in range(d):  # write each row of kt contiguously
            for j in range(tk):
                kt[g, c, j] = k[g, j, c]
    return kt


@njit(parallel=True, cache=True)
def _v_blocks_transposed(v):
    """(G, Tk, D) -> (G, Tk/BK, Dp, BK): vt[g, kb, c, b] = v[g, kb*BK + b, c], zero-padded."""
    groups, tk, d = v.shape
    k_blocks = (tk + BLOCK_K3 - 1) // BLOCK_K3
    vt = np.zeros((groups, k_blocks, (d + 3) // 4 * 4, BLOCK_K3), np.float32)
    for job in prange(groups * k_blocks):
        g, kb = job // k_blocks, job % k_blocks
        v_b = v[g, kb * BLOCK_K3:(kb + 1) * BLOCK_K3]  # (<= BK, D)
        for c in range(d):  # write each row of vt contiguously
            vt_row = vt[g, kb, c]
            for b in range(v_b.shape[0]):
                vt_row[b] = v_b[b, c]
    return vt


def _transpose_k(k, v):
    return np.ascontiguousarray(np.swapaxes(k, 1, 2)), v  # k (G, D, Tk)


def _v3_layout(k, v):
    """k (G, D, Tk rounded up to TILE), v (G, Tk/BK, Dp, BK), and the number of keys."""
    return _k_tiles_transposed(k), _v_blocks_transposed(v), k.shape[1]


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
    """v3: v2 with both products as register-blocked 2x4 dot-product tiles, balanced threads."""
    return _run(_attention_v3, q, k, v, causal, layout=_v3_layout)


ATTENTION_VERSIONS = {"v1": attention_cpu_v1, "v2": attention_cpu_v2, "v3": attention_cpu_v3}

# Decoding with a KV cache sends 1 query row against Tk keys: v3 has no rows to share its loads
# across and its transposed copy of v costs more than the whole of v1's work.
FEW_QUERY_ROWS = 4


def attention_cpu(q, k, v, causal=True):
    """The fastest CPU version for the shape: v1 below FEW_QUERY_ROWS query rows, else v3."""
    few_rows = isinstance(q, np.ndarray) and q.ndim >= 2 and q.shape[-2] < FEW_QUERY_ROWS
    return (attention_cpu_v1 if few_rows else attention_cpu_v3)(q, k, v, causal)
