"""The one dispatch point: (op name, backend name) -> function.

The model never names a kernel variant; it asks `ops(backend)` for a namespace holding
`softmax, layernorm, gelu, attention, ffn` and calls `linear` for every weight matrix.
Backends: "reference" (NumPy, the spec), "cpu" (Numba), "cuda" (numba.cuda; GPU or simulator).
Chapter 5 shows how one model runs on all three.
"""

from __future__ import annotations

import importlib

import numpy as np

BACKENDS = ("reference", "cpu", "cuda")
OPS = ("softmax", "layernorm", "gelu", "attention", "ffn")


def check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def ops(backend: str):
    """The kernel module of a backend (imported, and for CUDA initialised, on first use)."""
    return importlib.import_module(f"minilm.kernels.{check_backend(backend)}")


def op(name: str, backend: str):
    """One kernel: `op("attention", "cpu")` is `minilm.kernels.cpu.attention`."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; choose one of {', '.join(OPS)}")
    return getattr(ops(backend), name)


def linear(x: np.ndarray, w, b: np.ndarray, backend: str) -> np.ndarray:
    """x (..., K) @ w + b for a float weight w (K, N); a k-bit weight goes to `kbit.matmul`.

    A quantized weight stores W^T (N, K), the layout of `kbit.matmul(x, qt)` = x @ W^T.
    """
    if isinstance(w, np.ndarray):
        return x @ w + b
    from . import kbit

    return kbit.matmul(x, w, backend=backend) + b
