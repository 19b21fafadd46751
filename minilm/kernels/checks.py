"""Argument checks shared by every kernel wrapper: dtype, rank, shape, contiguity.

Fast kernels never see bad input: each public kernel function calls these first, so a wrong
argument becomes a `TypeError`/`ValueError` that names the argument and what is allowed.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def float_array(name: str, x, ndims=None, dtypes=(np.float32,)) -> np.ndarray:
    """Return `x` as a C-contiguous array after checking its dtype and rank.

    `dtypes`: the allowed dtypes (the fast kernels take float32 only; the NumPy references also
    take float64 so that training can check gradients in double precision).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in dtypes:
        allowed = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(
            f"{name} must have dtype {allowed}, got {x.dtype}"
            f" (convert with {name}.astype(np.float32))"
        )
    if ndims is not None and x.ndim not in ndims:
        allowed = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {x.shape}")
    if x.ndim and min(x.shape) == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    return np.ascontiguousarray(x)


def same_dtype(**arrays: np.ndarray) -> None:
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name}={dt}" for name, dt in dtypes.items())
        raise TypeError(f"arrays must share one dtype, got {listed}")


def shape_is(name: str, x: np.ndarray, shape: tuple, meaning: str) -> None:
    if x.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} ({meaning}), got {x.shape}")


def positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)
