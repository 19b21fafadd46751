"""Sharing two cores between Numba's threads and the BLAS library's threads.

NumPy's OpenBLAS keeps its worker threads spinning for a while after each matrix product, and
Numba's `prange` kernels start their own threads: run one right after the other and both pools
fight for the same cores (a 3 ms model forward became 300 ms here). So the "cpu" backend runs
BLAS single-threaded inside `cpu_region()` and parallelises a large matrix product itself, by
splitting its rows over a small pool of Python threads (NumPy releases the GIL in `@`).
Chapter 1 (Numba in practice) shows the measurement that motivated this. Two independent
products of the same size (the linear backward's d_x and d_w) run side by side instead, each
on half of the threads (`matmul_pair`): one BLAS call on a whole product is more efficient than
two on its halves.

Training adds two process-wide settings (`tune_for_training`), measured on the minilm-xl step
(B=16, T=256) on 2 cores: 1.32 s -> 1.09 s. They are not the default because passive waiting
slows the many tiny kernels of token-by-token generation (745 -> 266 tokens/s).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
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


def matmul(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (..., K) @ w (K, N) (+ bias (N,)) with the rows of x split over the thread pool when
    the product is large; each thread adds the bias to its rows while they are in its cache."""
    rows = x.reshape(-1, x.shape[-1])  # (M, K)
    out = np.empty((rows.shape[0], w.shape[1]), np.result_type(x, w))  # (M, N)
    _run_products([(rows, w, out)], bias)
    return out.reshape(*x.shape[:-1], w.shape[1])


def matmul_pair(x1: np.ndarray, w1: np.ndarray, x2: np.ndarray, w2: np.ndarray):
    """x1 (M1, K1) @ w1 and x2 (M2, K2) @ w2 at the same time, each on half of the threads.

    For two products of the same size this beats running them one after the other, each split
    over all the threads: a thread's BLAS call on a whole product is more efficient than on half
    of it (the linear backward of minilm-m, B=16, T=256: 9-19% faster per layer on 2 cores)."""
    outs = [np.empty((x.shape[0], w.shape[1]), np.result_type(x, w))
            for x, w in ((x1, w1), (x2, w2))]  # (M1, N1), (M2, N2)
    _run_products([(x1, w1, outs[0]), (x2, w2, outs[1])])
    return outs


def _run_products(products: list, bias=None) -> None:
    """out = rows @ w (+ bias) for each (rows, w, out) of `products`, at the same time: each
    product splits its rows over an equal share of the threads. Small work runs here, one
    product after the other (handing it over would cost more than it saves)."""
    flops = sum(2 * rows.size * w.shape[1] for rows, w, _ in products)
    if n_threads() < 2 or flops < SPLIT_MIN_FLOPS:
        for rows, w, out in products:
            _product(rows, w, bias, out)
        return
    with cpu_region():
        jobs = []
        for rows, w, out in products:
            parts = max(1, min(n_threads() // len(products), len(rows)))
            bounds = np.linspace(0, len(rows), parts + 1).astype(int)
            jobs += [_pool().submit(_product, rows[a:b], w, bias, out[a:b])
                     for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for job in jobs:
            job.result()


def _product(rows: np.ndarray, w: np.ndarray, bias: np.ndarray | None, out: np.ndarray) -> None:
    np.matmul(rows, w, out=out)
    if bias is not None:
        out += bias


GLIBC_M_TRIM_THRESHOLD, GLIBC_M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
KEEP_FREED_BYTES = 1 << 30  # freed heap memory glibc keeps instead of returning to the OS
LARGEST_HEAP_BLOCK = 32 << 20  # blocks up to 32 MiB come from the heap, not a fresh mmap


def tune_for_training() -> None:
    """Process-wide settings for the training loop's large, repeated steps (best effort).

    * glibc gives big freed arrays back to the OS and the next step faults the pages in again;
      every fresh page costs a fault and a zeroing, and two threads faulting together were
      slower than one. Keeping freed memory in the heap makes the matrix products scale.
    * OpenMP (Numba's threading layer) spins its idle threads, which then steal the cores from
      the BLAS threads of the next product; passive waiting gives the cores back. This only
      takes effect before the first parallel kernel of the process has run.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(GLIBC_M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
            libc.mallopt(GLIBC_M_TRIM_THRESHOLD, KEEP_FREED_BYTES)


def in_cpu_region(kernel):
    """Decorator: run a CPU kernel wrapper inside `cpu_region()`."""

    @functools.wraps(kernel)
    def wrapper(*args, **kwargs):
        with cpu_region():
            return kernel(*args, **kwargs)

    return wrapper
