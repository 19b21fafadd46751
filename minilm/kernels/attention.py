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
      and the exponentials are vectorised (`fastexp`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .checks import FLOAT_DTYPES, float_array, same_dtype
from .fastexp import FASTMATH, exp_block
from .softmax import softmax_reference


def _check(q, k, v, causal, dtypes):
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
    q, k, v = _check(q, k, v, causal, FLOAT_DTYPES)
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
        bits = np.empty(BLOCK_K, np.int32)
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
                row_sum[a] = row_sum[a] * correction + exp_block(s, m_new, s, bits, n_keys)
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


def _run(kernel, q, k, v, causal, transpose_k):
    q, k, v = _check(q, k, v, causal, (np.float32,))
    lead = q.shape[:-2]
    q3 = q.reshape(-1, *q.shape[-2:])  # (G, Tq, D), G = H or B*H
    k3 = k.reshape(-1, *k.shape[-2:])  # (G, Tk, D)
    v3 = v.reshape(-1, *v.shape[-2:])  # (G, Tk, D)
    if transpose_k:
        k3 = np.ascontiguousarray(np.swapaxes(k3, 1, 2))  # (G, D, Tk)
    out = np.empty_like(q3)
    kernel(q3, k3, v3, bool(causal), out)
    return out.reshape(*lead, *q.shape[-2:])


def attention_cpu_v1(q, k, v, causal=True):
    """v1: one query row per parallel iteration, exact softmax over the row's scores."""
    return _run(_attention_v1, q, k, v, causal, transpose_k=False)


def attention_cpu_v2(q, k, v, causal=True):
    """v2: query blocks x key blocks with an online softmax and a vectorised exp."""
    return _run(_attention_v2, q, k, v, causal, transpose_k=True)


ATTENTION_VERSIONS = {"v1": attention_cpu_v1, "v2": attention_cpu_v2}
attention_cpu = attention_cpu_v2
