"""kbit.quantize / QuantizedTensor / error_stats: blockwise absmax and nearest-entry codes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minilm import kbit

DTYPES = list(kbit.DTYPES)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 200),
                  elements=st.floats(-1e3, 1e3, width=32)),
       st.integers(2, 8), st.sampled_from(DTYPES), st.sampled_from([16, 24, 64, None]))
def test_codes_are_the_nearest_entries(w, bits, dtype, block_size):
    qt = kbit.quantize(w, bits, dtype, block_size)
    block = block_size or w.size
    padded = np.zeros(-(-w.size // block) * block, np.float32)
    padded[: w.size] = w
    absmax = np.abs(padded.reshape(-1, block)).max(axis=1)
    np.testing.assert_array_equal(qt.scales, absmax)
    scaled = (padded.reshape(-1, block) / np.where(absmax > 0, absmax, 1)[:, None]).ravel()
    scaled = scaled[: w.size].astype(np.float64)
    table = kbit.codebook(dtype, bits).astype(np.float64)
    chosen = np.abs(table[qt.codes()] - scaled)
    best = np.abs(table[None, :] - scaled[:, None]).min(axis=1)
    assert np.all(chosen <= best + 1e-7)


def test_ties_go_to_the_lower_entry():
    table = kbit.codebook("int", 2)  # -1, 0, 1, 1
    qt = kbit.quantize(np.array([-1.0, -0.5, 0.5, 1.0] * 4, np.float32), 2, "int", 16)
    assert qt.codes()[:4].tolist() == [0, 0, 1, 2]
    assert table[qt.codes()[:4]].tolist() == [-1, -1, 0, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_error_falls_as_bits_rise(rng, dtype):
    w = rng.standard_normal((64, 256)).astype(np.float32)
    errors = [kbit.error_stats(w, kbit.quantize(w, bits, dtype, 64)) for bits in range(2, 9)]
    mse = [e["mse"] for e in errors]
    assert all(a > b for a, b in zip(mse, mse[1:], strict=False)), mse
    assert errors[-1]["sqnr_db"] > errors[2]["sqnr_db"] + 10  # 8 vs 4 bits


def test_nf_beats_int_on_normal_weights(rng):
    w = rng.standard_normal((64, 256)).astype(np.float32)
    nf, fp, int_ = (kbit.error_stats(w, kbit.quantize(w, 4, d, 64))["mse"]
                    for d in ("nf", "fp", "int"))
    assert nf < int_ and fp < int_


def test_zero_block_gives_zeros_not_nan(rng):
    w = rng.standard_normal(128).astype(np.float32)
    w[64:] = 0
    qt = kbit.quantize(w, 4, "nf", 64)
    assert qt.scales[1] == 0
    out = qt.dequantize()
    assert np.isfinite(out).all() and np.all(out[64:] == 0)
    everything_zero = kbit.quantize(np.zeros((4, 8), np.float32), 3, "fp", None)
    assert np.array_equal(everything_zero.dequantize(), np.zeros((4, 8), np.float32))


def test_per_tensor_vs_blockwise(rng):
    w = rng.standard_normal((32, 128)).astype(np.float32)
    w[0, 0] = 50.0  # one outlier spoils the whole tensor's scale, but only one block's
    per_tensor = kbit.quantize(w, 4, "nf", None)
    blockwise = kbit.quantize(w, 4, "nf", 64)
    assert per_tensor.scales.shape == (1,) and blockwise.scales.shape == (64,)
    assert per_tensor.bits_per_param == pytest.approx(4 + 32 / w.size)
    assert blockwise.bits_per_param == pytest.approx(4.5)
    assert (kbit.error_stats(w, blockwise)["mse"]
            < kbit.error_stats(w, per_tensor)["mse"] / 10)


def test_quantized_tensor_fields(rng):
    w = rng.standard_normal((5, 40)).astype(np.float64)  # float64 is accepted
    qt = kbit.quantize(w, 3, "fp", 16)  # 200 values: last block has 8
    assert qt.shape == (5, 40) and qt.bits == 3 and qt.dtype == "fp" and qt.block_size == 16
    assert qt.packed.size == 75 and qt.scales.size == 13
    assert qt.nbytes == 75 + 13 * 4
    out = qt.dequantize()
    assert out.dtype == np.float32 and out.shape == (5, 40)
    np.testing.assert_allclose(out, w, atol=0.6 * np.abs(w).max())
    assert "bits=3" in repr(qt)


@pytest.mark.parametrize("bits, block_size", [(4, 64), (3, 16), (8, None), (5, 24)])
def test_rows_decode_alone(rng, bits, block_size):
    w = rng.standard_normal((10, 48 if block_size == 24 else 64)).astype(np.float32)
    qt = kbit.quantize(w, bits, "nf", block_size)
    full = qt.dequantize()
    rows = np.array([[3, 0], [9, 3]])
    np.testing.assert_array_equal(qt.dequantize_rows(rows), full[rows])
    np.testing.assert_array_equal(qt[2:5], full[2:5])
    np.testing.assert_array_equal(qt[7], full[7])
    with pytest.raises(IndexError):
        qt.dequantize_rows(np.array([10]))


def test_error_stats(rng):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    stats = kbit.error_stats(w, kbit.quantize(w, 8, "int", 64))
    assert set(stats) == {"mse", "max_abs_error", "sqnr_db"}
    assert 0 < stats["mse"] < 1e-4 and stats["max_abs_error"] < 0.02 and stats["sqnr_db"] > 40
    exact = kbit.quantize(np.ones((2, 16), np.float32), 4, "nf", 16)
    assert kbit.error_stats(np.ones((2, 16), np.float32), exact)["sqnr_db"] == float("inf")
    with pytest.raises(ValueError, match="shape"):
        kbit.error_stats(w[:4], kbit.quantize(w, 4))


def test_bad_input():
    w = np.ones((4, 16), np.float32)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN or Inf"):
            kbit.quantize(np.array([1.0, bad, 2.0], np.float32))
    with pytest.raises(TypeError, match="w must have dtype"):
        kbit.quantize(w.astype(np.int32))
    with pytest.raises(TypeError, match="w must be a numpy.ndarray"):
        kbit.quantize([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown dtype"):
        kbit.quantize(w, 4, "bf16")
    with pytest.raises(ValueError, match="bits must be in 2..8"):
        kbit.quantize(w, 9)
    for block_size in (8, 20, 8192):
        with pytest.raises(ValueError, match="block_size must be None or a multiple of 8"):
            kbit.quantize(w, 4, "nf", block_size)
    with pytest.raises(TypeError, match="block_size must be an int"):
        kbit.quantize(w, 4, "nf", 64.0)


def test_inconsistent_quantized_tensor_is_refused():
    qt = kbit.quantize(np.ones((4, 16), np.float32), 4, "nf", 16)
    with pytest.raises(ValueError, match="packed must have 32 entries"):
        kbit.QuantizedTensor(qt.packed[:-1], qt.scales, qt.shape, 4, "nf", 16)
    with pytest.raises(TypeError, match="scales must be a 1-D float32"):
        kbit.QuantizedTensor(qt.packed, qt.scales.astype(np.float64), qt.shape, 4, "nf", 16)
    with pytest.raises(ValueError, match="bits must be in 2..8"):
        kbit.QuantizedTensor(qt.packed, qt.scales, qt.shape, 1, "nf", 16)
