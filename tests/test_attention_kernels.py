"""Every numbered CPU attention kernel against the NumPy reference, on awkward shapes too."""

from __future__ import annotations

import numpy as np
import pytest

from minilm.kernels import cpu
from minilm.kernels.attention import ATTENTION_VERSIONS, attention_reference

KERNELS = {**ATTENTION_VERSIONS, "cpu.attention": cpu.attention}
ATOL, RTOL = 1e-5, 1e-4


def _inputs(lead, tq, tk, d, seed, magnitude=1.0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((*lead, tq, d), dtype=np.float32)
    k = rng.standard_normal((*lead, tk, d), dtype=np.float32)
    v = rng.standard_normal((*lead, tk, d), dtype=np.float32)
    return q * np.float32(magnitude), k * np.float32(magnitude), v


def _assert_close(out, ref):
    assert out.shape == ref.shape and out.dtype == np.float32
    bad = np.abs(out - ref) > ATOL + RTOL * np.abs(ref)
    worst = np.abs(out - ref).max()
    assert not bad.any(), f"{bad.sum()} of {bad.size} values off, max |err| {worst}"


T_VALUES = [1, 2, 7, 15, 16, 17, 63, 64, 65, 100, 130, 300]


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", T_VALUES)
def test_square_shapes(name, causal, t):
    for seed, (lead, d) in enumerate([((2,), 64), ((3,), 9), ((2, 2), 33)]):
        q, k, v = _inputs(lead, t, t, d, seed=seed + 10 * t)
        _assert_close(KERNELS[name](q, k, v, causal=causal), attention_reference(q, k, v, causal))


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("d", [1, 3, 9, 33, 64])
def test_head_dims(name, causal, d):
    q, k, v = _inputs((2,), 37, 37, d, seed=d)
    _assert_close(KERNELS[name](q, k, v, causal=causal), attention_reference(q, k, v, causal))


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("tq", "tk"), [(1, 1), (1, 9), (1, 300), (3, 17), (16, 130), (65, 257)])
def test_kv_cache_queries(name, causal, tq, tk):
    """Tq < Tk: the queries are the last Tq positions (causal mask aligned bottom-right)."""
    q, k, v = _inputs((2, 3), tq, tk, 16, seed=tq * 1000 + tk)
    _assert_close(KERNELS[name](q, k, v, causal=causal), attention_reference(q, k, v, causal))


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("d", [16, 64])
def test_large_scores_are_stable(name, causal, d):
    """Scores of size ~50 (some above 88, where a naive float32 exp(score) overflows).

    q and k hold small integers and 1/sqrt(D) is a power of two, so every kernel computes the
    scores exactly: what is left to compare is the softmax itself, not float32 rounding of
    large dot products (which any float32 kernel would amplify).
    """
    rng = np.random.default_rng(d)
    q = rng.integers(-12, 13, (3, 150, d)).astype(np.float32)
    k = rng.integers(-12, 13, (3, 150, d)).astype(np.float32)
    v = rng.standard_normal((3, 150, d), dtype=np.float32)
    scores = q @ np.swapaxes(k, 1, 2) / np.sqrt(d)
    assert 30 < scores.std() < 80 and scores.max() > 88
    ref = attention_reference(q, k, v, causal)
    assert np.isfinite(ref).all()
    _assert_close(KERNELS[name](q, k, v, causal=causal), ref)


def test_long_sequence_all_versions_agree():
    """A few key and query blocks deep, where the online softmax rescales many times."""
    q, k, v = _inputs((2,), 600, 600, 64, seed=3)
    ref = attention_reference(q, k, v, True)
    for kernel in KERNELS.values():
        _assert_close(kernel(q, k, v, causal=True), ref)


@pytest.mark.parametrize("name", KERNELS)
def test_nan_propagates_instead_of_a_silent_number(name):
    q, k, v = _inputs((2,), 40, 40, 16, seed=6)
    q[1, 30, 5] = np.nan  # one query row
    v[0, 10, 2] = np.nan  # one value row: every query that sees key 10 (i >= 10 when causal)
    out = KERNELS[name](q, k, v, causal=True)
    assert np.isnan(out[1, 30]).all() and np.isnan(out[0, 10:, 2]).all()
    assert np.isfinite(out[1, :30]).all()  # (earlier rows may see 0 * NaN, as the reference does)


def test_numpy_bool_and_noncontiguous_inputs():
    q, k, v = _inputs((2,), 20, 20, 8, seed=1)
    q_view = np.swapaxes(np.swapaxes(q, 1, 2).copy(), 1, 2)  # same values, Fortran-like strides
    ref = attention_reference(q, k, v, True)
    for kernel in KERNELS.values():
        _assert_close(kernel(q_view, k, v, causal=np.bool_(True)), ref)


@pytest.mark.parametrize("name", KERNELS)
def test_rejects_bad_arguments(name):
    attention = KERNELS[name]
    q, k, v = _inputs((2,), 5, 5, 4, seed=0)
    with pytest.raises(TypeError, match="float32"):
        attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    with pytest.raises(TypeError):
        attention(q, k.astype(np.float64), v)
    with pytest.raises(TypeError):
        attention(q.tolist(), k, v)
    with pytest.raises(ValueError):
        attention(q, k, v[:, :4])  # k and v disagree
    with pytest.raises(ValueError):
        attention(q[..., :3], k, v)  # different D
    with pytest.raises(ValueError):
        attention(q[:1], k, v)  # different heads
    with pytest.raises(ValueError):
        attention(q[0], k[0], v[0])  # 2 dimensions
    with pytest.raises(ValueError):
        attention(q[None, None], k[None, None], v[None, None])  # 5 dimensions
    with pytest.raises(ValueError):
        attention(q[:, :0], k, v)  # empty
    q_long, k_short, v_short = _inputs((2,), 6, 5, 4, seed=0)
    with pytest.raises(ValueError, match="Tq <= Tk"):
        attention(q_long, k_short, v_short, causal=True)
    with pytest.raises(TypeError, match="causal"):
        attention(q, k, v, causal=1)
    with pytest.raises(TypeError, match="causal"):
        attention(q, k, v, causal="yes")


def test_reference_takes_float64():
    q, k, v = _inputs((2,), 9, 9, 5, seed=2)
    out64 = attention_reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    assert out64.dtype == np.float64
    _assert_close(out64.astype(np.float32), attention_reference(q, k, v))


def test_non_causal_with_more_queries_than_keys():
    q, _, _ = _inputs((2,), 9, 9, 8, seed=4)
    _, k, v = _inputs((2,), 4, 4, 8, seed=5)
    ref = attention_reference(q, k, v, causal=False)
    for kernel in KERNELS.values():
        _assert_close(kernel(q, k, v, causal=False), ref)
