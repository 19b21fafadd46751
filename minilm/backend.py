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

import numpy as np

BACKENDS = ("reference", "cpu", "cuda")
OPS = ("softmax", "layernorm", "gelu", "attention", "ffn", "linear")


def check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def ops(backend: str):
    """The kernel module of a backend (imported on first use). For "cuda" it first checks that
    a GPU or the CUDA simulator is usable, else raises an error saying how to get one."""
    module = importlib.import_module(f"minilm.kernels.{check_backend(backend)}")
    if backend == "cuda":
        module.require()
    return module


def region(backend: str, model=None):
    """A context to run a whole model step in: on "cpu" it keeps BLAS and Numba threads from
    fighting over the cores (see `kernels/threads.py`); on "cuda" it keeps the weights of
    `model` on the device between calls (see `kernels/cuda/weights.py`)."""
    if check_backend(backend) == "cpu":
        from .kernels.threads import cpu_region

        return cpu_region()
    if backend == "cuda" and model is not None:
        from .kernels.cuda.weights import resident

        return resident(model)
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
