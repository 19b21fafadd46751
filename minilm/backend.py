"""The one dispatch point: (op name, backend name) -> function.

The model never names a kernel variant; it asks `ops(backend)` for a namespace holding
`softmax, layernorm, gelu, attention, ffn, linear` and calls `backend.linear` for every weight
matrix (float or k-bit).
Backends: "reference" (NumPy, the spec), "cpu" (Numba), "cuda" (numba.cuda; GPU or simulator).
Chapter 5 shows how one model runs on all three.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util

import numpy as np

BACKENDS = ("reference", "cpu", "cuda")
OPS = ("softmax", "layernorm", "gelu", "attention", "ffn", "linear")


def check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def ops(backend: str):
    """The kernel module of a backend (imported, and for CUDA initialised, on first use)."""
    if check_backend(backend) == "cuda" and importlib.util.find_spec("minilm.kernels.cuda") is None:
        raise NotImplementedError("the 'cuda' backend is not implemented yet; use backend='cpu' "
                                  "or 'reference'")
    return importlib.import_module(f"minilm.kernels.{backend}")


def region(backend: str):
    """A context to run a whole model step in: on "cpu" it keeps BLAS and Numba threads from
    fighting over the cores (see `kernels/threads.py`); elsewhere it does nothing."""
    if check_backend(backend) == "cpu":
        from .kernels.threads import cpu_region

        return cpu_region()
    return contextlib.nullcontext()


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
        return ops(backend).linear(x, w, b)
    from . import kbit

    return kbit.matmul(x, w, backend=backend) + b
