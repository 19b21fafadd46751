"""The CUDA kernels (minilm.kernels.cuda) against the NumPy references, every version, tiny
shapes that are not multiples of the block / tile sizes; bad input gets the CPU's errors."""

import numpy as np
import pytest

from minilm.bench import check_close
from minilm.kernels import cpu, reference
from minilm.kernels import cuda as gpu
from minilm.kernels.cuda.attention_kernels import MAX_D


def normal(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape", [(1,), (3, 1), (5, 37), (2, 3, 17)])
def test_softmax(rng, shape):
    x = normal(rng, *shape, scale=5.0)
    check_close("softmax", gpu.softmax(x), reference.softmax(x), 1e-6, 1e-5)


def test_softmax_is_safe_for_huge_values():
    x = np.array([[1e30, 0.0, -1e30]], np.float32)
    check_close("softmax", gpu.softmax(x), [[1.0, 0.0, 0.0]], 0, 0)


@pytest.mark.parametrize("shape", [(1, 1), (4, 19), (2, 3, 40)])
def test_layernorm(rng, shape):
    x = normal(rng, *shape, scale=3.0) + 2
    gamma, beta = normal(rng, shape[-1]), normal(rng, shape[-1])
    check_close("layernorm", gpu.layernorm(x, gamma, beta, 1e-3),
                reference.layernorm(x, gamma, beta, 1e-3), 1e-5, 1e-4)


@pytest.mark.parametrize("shape", [(1,), (37,), (3, 5, 7)])
def test_gelu(rng, shape):
    x = normal(rng, *shape, scale=4.0)
    check_close("gelu", gpu.gelu(x), reference.gelu(x), 1e-6, 1e-5)


@pytest.mark.parametrize("lead, c, f", [((1,), 3, 5), ((9,), 8, 17), ((2, 3), 11, 9)])
def test_linear_and_every_ffn_version(rng, lead, c, f):
    x = normal(rng, *lead, c)
    w1, b1, w2, b2 = normal(rng, c, f), normal(rng, f), normal(rng, f, c), normal(rng, c)
    check_close("linear", gpu.linear(x, w1, b1), reference.linear(x, w1, b1), 1e-5, 1e-4)
    expected = reference.ffn(x, w1, b1, w2, b2)
    for name, ffn in gpu.FFN_VERSIONS.items():
        check_close(f"ffn {name}", ffn(x, w1, b1, w2, b2), expected, 1e-5, 1e-4)
    check_close("ffn", gpu.ffn(x, w1, b1, w2, b2), expected, 1e-5, 1e-4)


# (lead axes, Tq, Tk, D, causal): T=1, rows past one query block (BLOCK_Q = 8 under the
# simulator), keys past one tile (BLOCK_K = 32), decoding (Tq < Tk), Tq > Tk, 4-D (B, H, T, D)
ATTENTION_CASES = [((1,), 1, 1, 4, True), ((2,), 5, 5, 3, False), ((1,), 19, 19, 8, True),
                   ((1,), 3, 34, 4, True), ((1,), 6, 4, 4, False), ((2, 1), 4, 4, 5, True)]


@pytest.mark.parametrize("lead, tq, tk, d, causal", ATTENTION_CASES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_attention_versions(rng, lead, tq, tk, d, causal, version):
    q, k, v = normal(rng, *lead, tq, d), normal(rng, *lead, tk, d), normal(rng, *lead, tk, d)
    out = gpu.ATTENTION_VERSIONS[version](q, k, v, causal=causal)
    check_close(f"attention {version}", out, reference.attention(q, k, v, causal=causal),
                1e-5, 1e-4)


def test_attention_picks_a_version_for_every_head_width(rng):
    q, k, v = (normal(rng, 1, 2, MAX_D + 1) for _ in range(3))
    check_close("attention", gpu.attention(q, k, v), reference.attention(q, k, v), 1e-5, 1e-4)
    with pytest.raises(ValueError, match=f"D <= {MAX_D}"):
        gpu.ATTENTION_VERSIONS["v2"](q, k, v)


BAD_CALLS = [
    ("softmax", lambda m: m.softmax([1.0, 2.0])),
    ("softmax", lambda m: m.softmax(np.ones(3, np.int64))),
    ("layernorm", lambda m: m.layernorm(np.ones((2, 4), np.float32), np.ones(3, np.float32),
                                        np.ones(4, np.float32))),
    ("layernorm", lambda m: m.layernorm(np.ones(4, np.float32), np.ones(4, np.float32),
                                        np.ones(4, np.float32), eps=0.0)),
    ("gelu", lambda m: m.gelu(np.ones((0, 3), np.float32))),
    ("linear", lambda m: m.linear(np.ones((2, 4), np.float32), np.ones((5, 3), np.float32),
                                  np.ones(3, np.float32))),
    ("ffn", lambda m: m.ffn(np.ones((2, 4), np.float32), np.ones((4, 8), np.float32),
                            np.ones(8, np.float32), np.ones((8, 5), np.float32),
                            np.ones(4, np.float32))),
    ("attention", lambda m: m.attention(*(np.ones((1, 3, 4), np.float32),) * 2,
                                        np.ones((1, 2, 4), np.float32))),
    ("attention", lambda m: m.attention(np.ones((1, 5, 4), np.float32),
                                        *(np.ones((1, 3, 4), np.float32),) * 2)),
    ("attention", lambda m: m.attention(*(np.ones((1, 3, 4), np.float32),) * 3, causal=1)),
]


@pytest.mark.parametrize("name, call", BAD_CALLS)
def test_bad_input_gets_the_cpu_error(name, call):
    with pytest.raises((TypeError, ValueError)) as on_cpu:
        call(cpu)
    with pytest.raises(on_cpu.type) as on_gpu:
        call(gpu)
    assert str(on_gpu.value) == str(on_cpu.value), name
