"""Every CPU kernel against its NumPy reference, over many shapes; and the error paths."""

import numpy as np
import pytest
from conftest import assert_close

from minilm.kernels import cpu, reference

SHAPES = [(1, 1), (1, 7), (3, 5), (17, 33), (2, 3, 64), (4, 1, 129), (2, 2, 3, 31), (1000,)]


def randn(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_softmax(rng, shape, scale):
    x = randn(rng, shape, scale)
    out = cpu.softmax(x)
    assert out.dtype == np.float32
    assert_close(out, reference.softmax(x), atol=1e-6, rtol=1e-5)
    assert_close(out.sum(axis=-1), np.ones(shape[:-1]), atol=1e-5)


def test_softmax_is_safe_for_huge_values():
    x = np.array([[1e4, 1e4 - 1, -1e4]], np.float32)
    assert_close(cpu.softmax(x), reference.softmax(x), atol=1e-6, rtol=1e-5)
    assert np.isfinite(cpu.softmax(x)).all()


def test_softmax_masked_entries_are_zero():
    x = np.array([[0.0, -np.inf, 1.0]], np.float32)
    out = cpu.softmax(x)
    assert out[0, 1] == 0.0
    assert_close(out, reference.softmax(x), atol=1e-7)


def test_nan_propagates_instead_of_a_silent_number():
    x = np.array([[0.0, np.nan, 1.0]], np.float32)
    assert np.isnan(cpu.softmax(x)).any()
    assert np.isnan(cpu.gelu(x)).any()


@pytest.mark.parametrize("shape", SHAPES)
def test_layernorm(rng, shape):
    x = randn(rng, shape, 3.0) + 5.0
    gamma, beta = randn(rng, shape[-1:]), randn(rng, shape[-1:])
    assert_close(cpu.layernorm(x, gamma, beta), reference.layernorm(x, gamma, beta),
                 atol=1e-4, rtol=1e-4)
    assert_close(cpu.layernorm(x, gamma, beta, eps=0.1),
                 reference.layernorm(x, gamma, beta, eps=0.1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES + [(3, 1025)])
def test_gelu(rng, shape):
    x = randn(rng, shape, 4.0)
    assert_close(cpu.gelu(x), reference.gelu(x), atol=1e-6, rtol=1e-5)


def test_gelu_extremes():
    x = np.array([-1e4, -100, -10, 0, 10, 100, 1e4], np.float32)
    assert_close(cpu.gelu(x), reference.gelu(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("lead,c,f", [((1,), 1, 1), ((7,), 5, 3), ((2, 9), 16, 64),
                                      ((3, 4), 33, 130), ((300,), 128, 512)])
def test_ffn_and_linear(rng, lead, c, f):
    x = randn(rng, (*lead, c))
    w1, b1 = randn(rng, (c, f), 0.2), randn(rng, (f,))
    w2, b2 = randn(rng, (f, c), 0.2), randn(rng, (c,))
    assert_close(cpu.ffn(x, w1, b1, w2, b2), reference.ffn(x, w1, b1, w2, b2),
                 atol=1e-4, rtol=1e-4)
    assert_close(cpu.linear(x, w1, b1), reference.linear(x, w1, b1), atol=1e-4, rtol=1e-4)


def test_large_linear_splits_over_threads(rng):
    x, w, b = randn(rng, (512, 256)), randn(rng, (256, 1024)), randn(rng, (1024,))
    assert_close(cpu.linear(x, w, b), x @ w + b, atol=1e-3, rtol=1e-4)


def test_non_contiguous_input_is_accepted(rng):
    x = randn(rng, (16, 8)).T
    assert_close(cpu.softmax(x), reference.softmax(np.ascontiguousarray(x)), atol=1e-6)


def test_reference_accepts_float64(rng):
    x = rng.standard_normal((3, 4))
    assert reference.softmax(x).dtype == np.float64
    assert reference.gelu(x).dtype == np.float64


@pytest.mark.parametrize("call, error, words", [
    (lambda: cpu.softmax(np.zeros((2, 3))), TypeError, "float32"),
    (lambda: cpu.softmax([1.0, 2.0]), TypeError, "numpy.ndarray"),
    (lambda: cpu.softmax(np.zeros((2, 0), np.float32)), ValueError, "empty"),
    (lambda: cpu.gelu(np.zeros(3, np.int32)), TypeError, "float32"),
    (lambda: cpu.layernorm(np.zeros((2, 3), np.float32), np.ones(4, np.float32),
                           np.zeros(3, np.float32)), ValueError, "gamma"),
    (lambda: cpu.layernorm(np.zeros((2, 3), np.float32), np.ones(3, np.float32),
                           np.zeros(3, np.float32), eps=-1.0), ValueError, "eps"),
    (lambda: cpu.layernorm(np.zeros((2, 3), np.float32), np.ones((3, 1), np.float32),
                           np.zeros(3, np.float32)), ValueError, "gamma"),
    (lambda: reference.layernorm(np.zeros((2, 3)), np.ones(3, np.float32),
                                 np.zeros(3)), TypeError, "one dtype"),
    (lambda: cpu.ffn(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32),
                     np.zeros(5, np.float32), np.zeros((5, 3), np.float32),
                     np.zeros(3, np.float32)), ValueError, "w1"),
    (lambda: cpu.ffn(np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32),
                     np.zeros(5, np.float32), np.zeros((5, 3), np.float32),
                     np.zeros(4, np.float32)), ValueError, "b2"),
    (lambda: cpu.linear(np.zeros((2, 3), np.float32), np.zeros((3, 5), np.float32),
                        np.zeros(4, np.float32)), ValueError, "b"),
])
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_fast_exp_accuracy_and_special_values():
    from numba import njit

    from minilm.kernels.fastexp import EXP_MAX, EXP_MIN, exp_block

    @njit
    def exps(x):
        out = np.empty_like(x)
        return exp_block(x, np.float32(0.0), out, x.shape[0]), out

    x = np.linspace(EXP_MIN, EXP_MAX, 100_003, dtype=np.float32)
    _, out = exps(x)
    assert np.max(np.abs(out / np.exp(x.astype(np.float64)) - 1)) < 3e-7  # ~2 ulp of float32
    x = np.random.default_rng(0).uniform(-5, 5, 1001).astype(np.float32)
    total, out = exps(x)
    assert total == pytest.approx(np.exp(x.astype(np.float64)).sum(), rel=1e-5)
    special = np.array([-np.inf, -100.0, np.nan, 0.0, np.inf], np.float32)
    _, out = exps(special)
    assert out[0] == 0.0 and out[1] == 0.0 and np.isnan(out[2]) and out[3] == 1.0
    assert out[4] == np.float32(np.exp(np.float64(EXP_MAX)))  # clamped, not inf
