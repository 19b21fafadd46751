"""The linear layer y = x @ w + b: the NumPy reference and the CPU version.

Taught in chapter 4 (the Transformer block). Matrix products are what BLAS does best, so the
CPU version keeps `@` but runs it through `threads.matmul` (rows split over the cores, BLAS
single-threaded so it does not fight Numba's threads).
"""

from __future__ import annotations

import numpy as np

from .checks import FLOAT_DTYPES, float_array, same_dtype, shape_is
from .threads import in_cpu_region, matmul


def _check(x, w, b, dtypes):
    x = float_array("x", x, dtypes=dtypes)
    w = float_array("w", w, ndims=(2,), dtypes=dtypes)
    b = float_array("b", b, ndims=(1,), dtypes=dtypes)
    same_dtype(x=x, w=w, b=b)
    shape_is("w", w, (x.shape[-1], w.shape[1]), "(K, N) with K the last axis of x")
    shape_is("b", b, (w.shape[1],), "(N,)")
    return x, w, b


def linear_reference(x, w, b):
    """x (..., K) @ w (K, N) + b (N,) -> (..., N)."""
    x, w, b = _check(x, w, b, FLOAT_DTYPES)
    return x @ w + b


@in_cpu_region
def linear_cpu(x, w, b):
    """`linear_reference` with the product split over the cores (float32)."""
    x, w, b = _check(x, w, b, (np.float32,))
    return matmul(x, w, bias=b)  # (..., N)
