"""Data types for k-bit weights: the codebooks "int", "fp" and "nf" (chapter 7).

A k-bit data type is a sorted table of 2**k float32 values in [-1, 1] (its *codebook*). A weight
block is scaled by its absolute maximum into [-1, 1] and each value is stored as the index (the
*code*) of the nearest codebook entry. The three types differ in where they put their levels:

    "int"  evenly spaced levels: good for uniform data, wasteful for bell-shaped weights;
    "fp"   a minifloat (sign, exponent, mantissa bits): levels dense near 0, sparse near 1;
    "nf"   normal float: the levels are quantiles of N(0, 1), so that a normally distributed
           weight uses every level equally often (information-theoretically optimal for it).

Every type supports k = 2..8 (`BITS`). A 1-bit type would have no zero or no sign, so there is
none; `kbit.pack` itself works for k = 1..8.
"""

from __future__ import annotations

import functools
from statistics import NormalDist

import numpy as np

DTYPES = ("int", "fp", "nf")
BITS = range(2, 9)  # codebook bit widths every data type supports
PACK_BITS = range(1, 9)  # bit widths kbit.pack / kbit.unpack support

# Exponent bits of the "fp" minifloat for each k (the rest, k - 1 - e, are mantissa bits):
# E1M0, E2M0, E2M1 (the FP4 of DESIGN.md), E3M1, E3M2, E4M2, E4M3 (the OCP FP8 "E4M3" split).
FP_EXPONENT_BITS = {2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4}


def check_bits(bits, allowed: range = BITS, name: str = "bits") -> int:
    """`bits` as an int after checking that it is an int in `allowed`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(bits).__name__}")
    if bits not in allowed:
        raise ValueError(f"{name} must be in {allowed.start}..{allowed.stop - 1}, got {bits}")
    return int(bits)


def check_dtype(dtype) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return dtype


def int_values(bits: int) -> np.ndarray:
    """Symmetric integer levels: 2**k - 1 evenly spaced values from -1 to 1 (0 in the middle).

    An even count of codes cannot be symmetric *and* hold 0, so the last code repeats +1 (as
    bitsandbytes' linear map spends its spare code); nearest rounding never picks it. Code c
    stands for (min(c, 2m) - m) / m with m = 2**(k-1) - 1, e.g. k = 8: (c - 127) / 127.
    """
    m = 2 ** (bits - 1) - 1
    levels = np.arange(2**bits, dtype=np.float64)  # (2**k,)
    return (np.minimum(levels, 2 * m) - m) / m


def fp_values(bits: int) -> np.ndarray:
    """Minifloat with 1 sign bit, e = FP_EXPONENT_BITS[k] exponent bits, m = k - 1 - e mantissa.

    Bias 2**(e-1) - 1, no inf or NaN: exponent field E = 0 gives subnormals (M / 2**m) * 2**(1 -
    bias), E > 0 gives (1 + M / 2**m) * 2**(E - bias). The values are normalised by the largest,
    so k = 4 (E2M1) gives +-{0, 0.5, 1, 1.5, 2, 3, 4, 6} / 6. +0 and -0 both appear (the codebook
    holds 0 twice).
    """
    e = FP_EXPONENT_BITS[bits]
    m = bits - 1 - e
    bias = 2 ** (e - 1) - 1
    field_e, field_m = np.divmod(np.arange(2 ** (bits - 1)), 2**m)  # every unsigned pattern
    subnormal = field_m / 2**m * 2.0 ** (1 - bias)
    normal = (1 + field_m / 2**m) * 2.0 ** (field_e - bias)
    magnitudes = np.where(field_e == 0, subnormal, normal)  # (2**(k-1),)
    return np.concatenate([-magnitudes, magnitudes]) / magnitudes.max()


def nf_values(bits: int) -> np.ndarray:
    """Normal float (QLoRA's construction, generalised from k = 4 to any k).

    With n = 2**k: 2**(k-1) positive levels are the N(0, 1) quantiles at probabilities evenly
    spaced from `offset` down to 0.5 (0.5 itself excluded), 2**(k-1) - 1 negative levels the same
    with one level fewer, plus an exact 0; everything is divided by the largest level. `offset`
    is the mean of 1 - 1/(2(n-1)) and 1 - 1/(2n), which keeps the outermost quantile finite
    (0.9677083 for k = 4, the value bitsandbytes uses: the NF4 table of QLoRA comes out exactly).
    """
    n, half = 2**bits, 2 ** (bits - 1)
    offset = 0.5 * ((1 - 1 / (2 * (n - 1))) + (1 - 1 / (2 * n)))
    ppf = np.vectorize(NormalDist().inv_cdf)
    positive = ppf(np.linspace(offset, 0.5, half + 1)[:-1])  # (2**(k-1),)
    negative = -ppf(np.linspace(offset, 0.5, half)[:-1])  # (2**(k-1) - 1,)
    values = np.concatenate([negative, [0.0], positive])
    return values / values.max()


_CONSTRUCTIONS = {"int": int_values, "fp": fp_values, "nf": nf_values}


@functools.cache
def _codebook(dtype: str, bits: int) -> np.ndarray:
    table = np.sort(_CONSTRUCTIONS[dtype](bits)).astype(np.float32) + np.float32(0)  # -0 -> +0
    table.flags.writeable = False
    return table


def codebook(dtype: str, bits: int) -> np.ndarray:
    """The 2**bits sorted float32 levels in [-1, 1] of data type `dtype` ("int", "fp", "nf").

    The array is shared and read-only; code c of a quantized tensor stands for `codebook[c]`.
    """
    return _codebook(check_dtype(dtype), check_bits(bits))


def nearest_codes(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 index of the nearest `table` entry for each value in [-1, 1] (ties: lower index).

    The midpoints between neighbouring entries split [-1, 1] into one interval per entry; a value
    exactly on a midpoint goes to the lower entry. With a repeated entry (the two zeros of "fp")
    the first copy wins on the tie; any copy is equally near.
    """
    midpoints = (table[:-1] + table[1:]) / 2  # (2**k - 1,)
    return np.searchsorted(midpoints, values, side="left").astype(np.uint8)
