"""Sharing two cores between Numba's threads and the BLAS library's threads.

NumPy's OpenBLAS keeps its worker threads spinning for a while after each matrix product, and
Numba's `prange` kernels start their own threads: run one right after the other and both pools
fight for the same cores (a 3 ms model forward became 300 ms here). So the "cpu" backend runs
BLAS single-threaded inside `cpu_region()` and parallelises a large matrix product itself, by
splitting its rows over a small pool of Python threads (NumPy releases the GIL in `@`).
Chapter 1 (Numba in practice) shows the measurement that motivated this.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SPLIT_MIN_FLOPS = 2**26  # smaller products run in the calling thread

_state = threading.local()


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n_threads(), thread_name_prefix="minilm-matmul")


@functools.cache
def n_threads() -> int:
    """Threads the CPU kernels use: Numba's setting (NUMBA_NUM_THREADS, default all cores)."""
    import numba

    return numba.config.NUMBA_NUM_THREADS


@contextlib.contextmanager
def cpu_region():
    """Run the enclosed CPU kernels with BLAS limited to one thread (re-entrant, cheap inside)."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        if depth:
            yield
        else:
            with _controller().limit(limits=1, user_api="blas"):
                yield
    finally:
        _state.depth = depth


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (..., K) @ w (K, N) with the rows of x split over the thread pool when it is large."""
    rows = x.reshape(-1, x.shape[-1])  # (M, K)
    m = rows.shape[0]
    workers = min(n_threads(), m)
    if workers < 2 or 2 * rows.size * w.shape[1] < SPLIT_MIN_FLOPS:
        return x @ w
    out = np.empty((m, w.shape[1]), np.result_type(x, w))  # (M, N)
    bounds = np.linspace(0, m, workers + 1).astype(int)
    with cpu_region():
        jobs = [_pool().submit(np.matmul, rows[a:b], w, out=out[a:b])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for job in jobs:
            job.result()
    return out.reshape(*x.shape[:-1], w.shape[1])


def in_cpu_region(kernel):
    """Decorator: run a CPU kernel wrapper inside `cpu_region()`."""

    @functools.wraps(kernel)
    def wrapper(*args, **kwargs):
        with cpu_region():
            return kernel(*args, **kwargs)

    return wrapper
