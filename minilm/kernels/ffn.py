"""The feed-forward network of a Transformer block: reference and CPU kernel.

Taught in chapter 4 (the Transformer block):
    ffn(x) = gelu(x @ w1 + b1) @ w2 + b2,   x (..., C), w1 (C, F), b1 (F,), w2 (F, C), b2 (C,)

The CPU version keeps the two matrix products in BLAS (`threads.matmul`: NumPy's `@` split over
the cores) and fuses the bias add and GELU into one parallel Numba pass over the hidden
activations, instead of the three full passes (add, tanh polynomial, multiply) NumPy makes.
"""

from __future__ import annotations

import numpy as np

from .checks import FLOAT_DTYPES, float_array, same_dtype, shape_is
from .gelu import bias_gelu_rows, gelu_reference
from .threads import in_cpu_region, matmul


def _check(x, w1, b1, w2, b2, dtypes):
    x = float_array("x", x, dtypes=dtypes)
    w1 = float_array("w1", w1, ndims=(2,), dtypes=dtypes)
    b1 = float_array("b1", b1, ndims=(1,), dtypes=dtypes)
    w2 = float_array("w2", w2, ndims=(2,), dtypes=dtypes)
    b2 = float_array("b2", b2, ndims=(1,), dtypes=dtypes)
    same_dtype(x=x, w1=w1, b1=b1, w2=w2, b2=b2)
    c, f = x.shape[-1], w1.shape[1]
    shape_is("w1", w1, (c, f), "(C, F) with C the last axis of x")
    shape_is("b1", b1, (f,), "(F,)")
    shape_is("w2", w2, (f, c), "(F, C)")
    shape_is("b2", b2, (c,), "(C,)")
    return x, w1, b1, w2, b2


def ffn_reference(x, w1, b1, w2, b2):
    """gelu(x @ w1 + b1) @ w2 + b2."""
    x, w1, b1, w2, b2 = _check(x, w1, b1, w2, b2, FLOAT_DTYPES)
    return gelu_reference(x @ w1 + b1) @ w2 + b2


@in_cpu_region
def ffn_cpu(x, w1, b1, w2, b2):
    """BLAS matmuls with a fused, parallel bias + GELU pass in between (float32)."""
    x, w1, b1, w2, b2 = _check(x, w1, b1, w2, b2, (np.float32,))
    rows = x.reshape(-1, x.shape[-1])  # (N, C)
    hidden = matmul(rows, w1)  # (N, F)
    activated = np.empty_like(hidden)
    bias_gelu_rows(hidden, b1, activated)
    return matmul(activated, w2, bias=b2).reshape(x.shape)  # (N, C) -> (..., C)
