"""k-bit on CUDA: pack / unpack give the exact bytes of the reference, every fused matmul version
matches dequantize-then-matmul, and bad input gets the CPU's errors."""

import numpy as np
import pytest

from minilm import kbit
from minilm.kbit.cuda_matmul import GEMV_ROWS, MATMUL_VERSIONS


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_unpack_exact(rng, bits):
    for n in (0, 5, 43):  # no code, only a tail (n < 8), whole groups and a tail
        codes = rng.integers(0, 2**bits, n, dtype=np.uint8)
        packed = kbit.pack(codes, bits, backend="cuda")
        np.testing.assert_array_equal(packed, kbit.pack_reference(codes, bits))
        out = np.empty(n, np.uint8)
        assert kbit.unpack(packed, bits, n, backend="cuda", out=out) is out
        np.testing.assert_array_equal(out, codes)


# bits, dtype, weight (N, K), block size, rows of x: every data type, N not a multiple of the
# tile, a block per row and one per tensor
CASES = [(2, "int", 5, 32, 16, 1), (3, "nf", 3, 24, None, 3), (4, "nf", 5, 32, 16, 2),
         (5, "fp", 1, 16, 16, 1), (6, "nf", 2, 40, None, 1), (8, "int", 3, 24, None, 2)]


@pytest.mark.parametrize("bits, dtype, n, k, block_size, rows", CASES)
def test_every_matmul_version(rng, bits, dtype, n, k, block_size, rows):
    qt = kbit.quantize(rng.standard_normal((n, k)).astype(np.float32), bits, dtype, block_size)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    expected = kbit.matmul_reference(x, qt)
    bound = 1e-5 * (np.abs(x) @ np.abs(qt.dequantize()).T) + 1e-6  # float32 sums of |terms|
    for name, version in MATMUL_VERSIONS.items():
        out = version(x, qt)
        assert out.dtype == np.float32 and out.shape == (rows, n), name
        assert np.all(np.abs(out - expected) <= bound), name


def test_dispatch_leading_axes_and_prefill(rng):
    qt = kbit.quantize(rng.standard_normal((6, 16)).astype(np.float32), 4, "nf", 16)
    for x in (rng.standard_normal(16), rng.standard_normal((2, GEMV_ROWS, 16))):
        x = x.astype(np.float32)
        out = kbit.matmul(x, qt, backend="cuda")
        assert out.shape == (*x.shape[:-1], 6)
        np.testing.assert_allclose(out, kbit.matmul_reference(x, qt), rtol=1e-4, atol=1e-5)
    x = rng.standard_normal((GEMV_ROWS + 1, 16)).astype(np.float32)  # v2 in two launches
    np.testing.assert_allclose(MATMUL_VERSIONS["v2"](x, qt), kbit.matmul_reference(x, qt),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("x, words", [(np.ones(8, np.float32), "shape"),
                                      (np.ones(16, np.float64), "float32"),
                                      ([1.0] * 16, "numpy")])
def test_matmul_bad_input_gets_the_cpu_error(x, words):
    qt = kbit.quantize(np.ones((4, 16), np.float32), 4, "nf", 16)
    with pytest.raises((TypeError, ValueError), match=words) as on_cpu:
        kbit.matmul(x, qt, backend="cpu")
    with pytest.raises(on_cpu.type) as on_gpu:
        kbit.matmul(x, qt, backend="cuda")
    assert str(on_gpu.value) == str(on_cpu.value)


def test_pack_bad_input_gets_the_cpu_error():
    for backend in ("cpu", "cuda"):
        with pytest.raises(ValueError, match=r"\[0, 8\)"):
            kbit.pack(np.array([9], np.uint8), 3, backend=backend)
