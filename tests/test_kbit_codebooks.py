"""kbit.codebook: the int, fp and nf data types for every supported k."""

import numpy as np
import pytest

from minilm import kbit

# The NF4 table of bitsandbytes / QLoRA (bitsandbytes/functional.py), published values.
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]


@pytest.mark.parametrize("dtype", kbit.DTYPES)
@pytest.mark.parametrize("bits", kbit.BITS)
def test_codebook_properties(dtype, bits):
    table = kbit.codebook(dtype, bits)
    assert table.dtype == np.float32 and table.shape == (2**bits,)
    assert np.all(np.diff(table) >= 0), "sorted"
    assert table.min() >= -1 and table.max() <= 1
    assert table.max() == 1 and 0.0 in table
    assert not table.flags.writeable


def test_nf4_equals_bitsandbytes():
    np.testing.assert_allclose(kbit.codebook("nf", 4), NF4, rtol=0, atol=1e-6)


def test_fp4_is_e2m1():
    table = kbit.codebook("fp", 4) * 6
    expected = [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0, 0.5, 1, 1.5, 2, 3, 4, 6]
    np.testing.assert_allclose(table, expected, rtol=0, atol=1e-6)
    assert kbit.FP_EXPONENT_BITS[4] == 2 and kbit.FP_EXPONENT_BITS[8] == 4


def test_int_is_evenly_spaced_and_symmetric():
    for bits in kbit.BITS:
        table = kbit.codebook("int", bits)[:-1]  # the last code repeats +1
        np.testing.assert_allclose(np.diff(table), 2 / (2**bits - 2), rtol=1e-5)
        np.testing.assert_allclose(table, -table[::-1], atol=1e-7)
    np.testing.assert_allclose(kbit.codebook("int", 8)[:255], (np.arange(255) - 127) / 127,
                               atol=1e-7)


@pytest.mark.parametrize("bits", kbit.BITS)
def test_nf_levels_are_normal_quantiles(bits):
    table = kbit.codebook("nf", bits).astype(np.float64)
    positive, negative = table[table > 0], table[table < 0]
    assert len(positive) == 2 ** (bits - 1) and len(negative) == 2 ** (bits - 1) - 1
    assert np.all(np.diff(positive) > 0) and np.all(np.diff(negative) > 0)
    if bits > 2:  # denser near 0 than near 1, as quantiles of a bell curve
        assert positive[1] - positive[0] < positive[-1] - positive[-2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dtype 'float'"):
        kbit.codebook("float", 4)
    for bits in (1, 9):
        with pytest.raises(ValueError, match=r"bits must be in 2..8"):
            kbit.codebook("nf", bits)
    with pytest.raises(TypeError, match="bits must be an int"):
        kbit.codebook("nf", "4")
