"""Fused k-bit matrix multiply: out = x @ dequantize(qt).T, reading only packed codes and scales
(chapter 9).

Decoding one token is a GEMV (x has 1 row) over every weight of the model: it is limited by how
fast the weights come from memory, so 4.5-bit weights could be up to 32 / 4.5 = 7x faster than
float32 ones, if decoding them costs (almost) nothing. The chapter builds it in steps, kept here
as numbered versions (`MATMUL_VERSIONS`, the same signature as `matmul`):

    "reference"  dequantize the whole W, then `@` (the spec; needs a float copy of W)
    "v1"         naive decode: each weight's code is cut out of the bit stream on its own
    "v2"         LUT: a group of 8 codes (k bytes) is read as one word, looked up in the
                 codebook into a small block buffer, then a contiguous dot per x row
    "v3"         fast: 1 row -> vector-register table lookups with int16 products (simd.py);
                 more rows (prefill) -> decode a tile of W rows, multiply the tile with BLAS

Only the reference is NumPy; v1-v3 are Numba (matmul_kernels.py, imported on first use).
`kbit.matmul(..., backend="cpu")` runs v3; backend="cuda" runs the GPU kernels of
cuda_matmul.py (chapter 11).
"""

from __future__ import annotations

import numpy as np

from ..backend import BACKENDS
from ..kernels.checks import float_array
from .quantize import QuantizedTensor


def check_matmul(x, qt) -> tuple[np.ndarray, tuple]:
    """(x as (M, K) rows, leading shape of x) after checking x (..., K) float32 against qt."""
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"qt must be a QuantizedTensor, got {type(qt).__name__}")
    if qt.ndim != 2:
        raise ValueError(f"qt must hold a 2-D weight (N, K), got shape {qt.shape}")
    n_cols = qt.shape[1]
    if qt.block_size is not None and n_cols % qt.block_size:
        raise ValueError(f"K={n_cols} (qt.shape[1]) must be a multiple of block_size="
                         f"{qt.block_size} so that no block straddles two rows")
    if n_cols % 8:
        raise ValueError(f"K={n_cols} (qt.shape[1]) must be a multiple of 8 so that every row "
                         "starts on a byte")
    x = float_array("x", x)
    if x.ndim == 0 or x.shape[-1] != n_cols:
        raise ValueError(f"x must have shape (..., {n_cols}) to multiply a weight of shape "
                         f"{qt.shape}, got {x.shape}")
    return x.reshape(-1, n_cols), x.shape[:-1]  # (M, K)


def matmul_reference(x: np.ndarray, qt: QuantizedTensor) -> np.ndarray:
    """x (..., K) @ dequantize(qt).T -> (..., N): the spec, with a float32 copy of W."""
    rows, lead = check_matmul(x, qt)
    return (rows @ qt.dequantize().T).reshape(*lead, qt.shape[0])


def _version(name: str):
    def run(x: np.ndarray, qt: QuantizedTensor) -> np.ndarray:
        rows, lead = check_matmul(x, qt)
        from . import matmul_kernels

        return getattr(matmul_kernels, f"matmul_{name}")(rows, qt).reshape(*lead, qt.shape[0])

    run.__name__ = run.__qualname__ = f"matmul_{name}"
    run.__doc__ = f"x (..., K) @ dequantize(qt).T -> (..., N) with version {name} (see module)."
    return run


MATMUL_VERSIONS = {"reference": matmul_reference, "v1": _version("v1"), "v2": _version("v2"),
                   "v3": _version("v3")}


def matmul(x: np.ndarray, qt: QuantizedTensor, backend: str = "cpu") -> np.ndarray:
    """x (..., K) @ dequantize(qt).T -> (..., N) float32, for qt quantized from W (N, K).

    K must be a multiple of the block size (and of 8). backend: "reference" | "cpu" | "cuda".
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cuda":
        from .cuda_matmul import matmul_cuda

        return matmul_cuda(x, qt)
    return MATMUL_VERSIONS["reference" if backend == "reference" else "v3"](x, qt)
