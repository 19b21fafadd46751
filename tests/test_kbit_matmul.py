"""kbit.matmul: every version against the reference (dequantize, then matmul), and bad input."""

import subprocess
import sys

import numpy as np
import pytest

from minilm import kbit
from minilm.kbit import matmul_kernels, simd

VERSIONS = ["v1", "v2", "v3"]
# (bits, dtype): every k, each data type, and every case the vector kernels of simd.py cover
TYPES = [(2, "int"), (3, "nf"), (3, "fp"), (4, "nf"), (4, "int"), (5, "fp"), (6, "nf"),
         (7, "int"), (8, "int"), (8, "nf")]
SHAPES = [(37, 128, 64), (5, 64, 16), (9, 192, None), (3, 256, 128), (1, 24, None)]  # N, K, B


def within_bound(out, ref, x, qt, rel):
    """|out - ref| <= rel * (|x| @ |W|^T) + 1e-6: the error of a dot product scales with the sum
    of |terms|, not with |ref| (which can be ~0 by cancellation)."""
    scale = np.abs(x.reshape(-1, qt.shape[1])) @ np.abs(qt.dequantize()).T
    excess = np.abs(out - ref).reshape(scale.shape) - (rel * scale + 1e-6)
    assert np.all(excess <= 0), f"worst excess {excess.max():.3g}"


@pytest.mark.parametrize("bits, dtype", TYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rows", [1, 3, 11])
def test_every_version_matches_reference(rng, bits, dtype, shape, rows):
    n, k, block_size = shape
    qt = kbit.quantize(rng.standard_normal((n, k)).astype(np.float32), bits, dtype, block_size)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    ref = kbit.matmul_reference(x, qt)
    assert ref.shape == (rows, n)
    for version in VERSIONS:
        out = kbit.MATMUL_VERSIONS[version](x, qt)
        assert out.dtype == np.float32 and out.shape == (rows, n), version
        # v1, v2 and the tiled GEMM are float32 throughout; the vector GEMV rounds the codebook
        # and x to int16 (simd.py), which costs about 3e-5 of |x| @ |W|^T
        within_bound(out, ref, x, qt, 2e-4 if version == "v3" else 1e-5)


def test_leading_dimensions_and_1d_x(rng):
    qt = kbit.quantize(rng.standard_normal((11, 64)).astype(np.float32), 4, "nf", 64)
    x = rng.standard_normal((2, 3, 64)).astype(np.float32)
    out = kbit.matmul(x, qt)
    assert out.shape == (2, 3, 11)
    within_bound(out, kbit.matmul(x, qt, backend="reference"), x, qt, 2e-4)
    assert kbit.matmul(x[0, 0], qt).shape == (11,)


@pytest.mark.skipif(not simd.available(), reason="needs an x86-64 CPU with AVX2")
@pytest.mark.parametrize("bits, dtype", [(3, "nf"), (4, "nf"), (4, "fp"), (8, "int")])
@pytest.mark.parametrize("parallel", [False, True])
def test_vector_gemv_is_used_and_close(rng, monkeypatch, bits, dtype, parallel):
    monkeypatch.setattr(simd, "PARALLEL_MIN", 0 if parallel else 2**40)
    qt = kbit.quantize(rng.standard_normal((21, 320)).astype(np.float32), bits, dtype, 64)
    assert simd.supports(qt)
    x = rng.standard_normal(320).astype(np.float32) * 100
    out = np.empty(21, np.float32)
    assert simd.gemv(x, qt, out)
    within_bound(out, kbit.matmul_reference(x, qt), x, qt, 2e-4)


def test_vector_gemv_coverage_rules(rng):
    w = rng.standard_normal((4, 128)).astype(np.float32)
    assert not simd.supports(kbit.quantize(w, 8, "nf", 64))  # 256-entry table: v2
    assert not simd.supports(kbit.quantize(w, 4, "nf", 32))  # blocks below a 64-value chunk
    assert not simd.supports(kbit.quantize(w[:, :96], 4, "nf", None))  # K not a multiple of 64


def test_non_finite_x_propagates_like_the_reference(rng):
    qt = kbit.quantize(rng.standard_normal((5, 128)).astype(np.float32), 4, "nf", 64)
    x = rng.standard_normal((2, 128)).astype(np.float32)
    x[0, 3], x[1, 70] = np.nan, np.inf
    ref = kbit.matmul_reference(x, qt)
    for version in VERSIONS:
        out = kbit.MATMUL_VERSIONS[version](x, qt)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))


@pytest.mark.parametrize("parallel", [False, True])
def test_gemm_tiles_cover_every_row(rng, monkeypatch, parallel):
    monkeypatch.setattr(matmul_kernels, "TILE_VALUES", 3 * 64)  # 3 rows per tile, 17 rows
    monkeypatch.setattr(matmul_kernels, "PARALLEL_MIN", 0 if parallel else 2**40)
    qt = kbit.quantize(rng.standard_normal((17, 64)).astype(np.float32), 5, "nf", 16)
    x = rng.standard_normal((9, 64)).astype(np.float32)
    within_bound(kbit.MATMUL_VERSIONS["v3"](x, qt), kbit.matmul_reference(x, qt), x, qt, 1e-5)


def test_bad_input(rng):
    qt = kbit.quantize(rng.standard_normal((4, 64)).astype(np.float32), 4, "nf", 16)
    x = np.ones(64, np.float32)
    for version in ["reference", *VERSIONS]:
        matmul = kbit.MATMUL_VERSIONS[version]
        with pytest.raises(TypeError, match="x must have dtype float32"):
            matmul(x.astype(np.float64), qt)
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 64\)"):
            matmul(np.ones(32, np.float32), qt)
        with pytest.raises(TypeError, match="qt must be a QuantizedTensor"):
            matmul(x, np.ones((4, 64), np.float32))
    straddling = kbit.quantize(rng.standard_normal((4, 24)).astype(np.float32), 4, "nf", 16)
    with pytest.raises(ValueError, match="must be a multiple of block_size=16"):
        kbit.matmul(np.ones(24, np.float32), straddling)
    with pytest.raises(ValueError, match="must hold a 2-D weight"):
        kbit.matmul(x, kbit.quantize(rng.standard_normal(64).astype(np.float32), 4))
    odd = kbit.quantize(rng.standard_normal((4, 21)).astype(np.float32), 4, "nf", None)
    with pytest.raises(ValueError, match="must be a multiple of 8"):
        kbit.matmul(np.ones(21, np.float32), odd)
    with pytest.raises(ValueError, match="unknown backend"):
        kbit.matmul(x, qt, backend="tpu")


def test_importing_kbit_loads_neither_numba_nor_llvmlite():
    code = ("import sys, minilm.kbit; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'llvmlite')]; print(bad); assert not bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
