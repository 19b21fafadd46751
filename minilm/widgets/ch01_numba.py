"""Chapter 1 (Numba in practice): measuring NumPy against Numba, compile time against run time,
and BLAS threads fighting Numba threads for the cores (`minilm/kernels/threads.py`).

The kernel measured is the library's softmax: `softmax_reference` (NumPy) against `softmax_cpu`
(a `prange` Numba kernel with a vectorised exp).
"""

from __future__ import annotations

import functools
import time

import numpy as np

from ..bench import median_time
from .common import figure, int_slider, panel

ROW_LENGTH = 256  # softmax rows of 256 scores: an array of n elements is (n / 256, 256)
SIZES_LOG2 = tuple(range(10, 22))  # 1 Ki ... 2 Mi elements


def softmax_inputs(n_elements: int, seed: int = 0) -> np.ndarray:
    """A float32 (n_elements / ROW_LENGTH, ROW_LENGTH) array of standard normal scores."""
    rows = max(1, n_elements // ROW_LENGTH)
    return np.random.default_rng(seed).standard_normal((rows, ROW_LENGTH), dtype=np.float32)


def numpy_vs_numba(sizes_log2=SIZES_LOG2, repeats: int = 5) -> dict[str, np.ndarray]:
    """Median seconds of softmax on 2**s elements for s in sizes_log2, NumPy vs Numba.

    Returns {"sizes": (S,), "numpy": (S,), "numba": (S,)}. The first Numba call (compiling, or
    loading the on-disk cache) is made before timing, so only run time is measured.
    """
    from ..kernels.softmax import softmax_cpu, softmax_reference

    sizes = np.array([2**s for s in sizes_log2])
    numpy_times, numba_times = [], []
    for n in sizes:
        x = softmax_inputs(int(n))
        numpy_times.append(median_time(lambda x=x: softmax_reference(x), repeats))
        numba_times.append(median_time(lambda x=x: softmax_cpu(x), repeats))
    return {"sizes": sizes, "numpy": np.array(numpy_times), "numba": np.array(numba_times)}


def timings_figure(timings: dict[str, np.ndarray], size_log2: int | None = None):
    """Left: time against array size (log-log); right: the speed-up. A marker at 2**size_log2."""
    fig = figure(10, 3.6)
    ax_time, ax_ratio = fig.subplots(1, 2)
    sizes = timings["sizes"]
    for name, style in (("numpy", "o-"), ("numba", "s-")):
        ax_time.loglog(sizes, timings[name] * 1e3, style, label=name)
    ratio = timings["numpy"] / timings["numba"]
    ax_ratio.semilogx(sizes, ratio, "d-", color="C2")
    ax_ratio.axhline(1.0, color="grey", lw=0.8)
    if size_log2 is not None:
        i = int(np.argmin(np.abs(np.log2(sizes) - size_log2)))
        for ax in (ax_time, ax_ratio):
            ax.axvline(sizes[i], color="grey", ls="--", lw=0.8)
        ax_time.set_title(f"n = {sizes[i]:,}: NumPy {timings['numpy'][i] * 1e3:.3f} ms, "
                          f"Numba {timings['numba'][i] * 1e3:.3f} ms", fontsize=10)
        ax_ratio.set_title(f"Numba is {ratio[i]:.1f}x faster here", fontsize=10)
    ax_time.set(xlabel="array size (float32 elements)", ylabel="median time (ms)")
    ax_time.legend()
    ax_ratio.set(xlabel="array size (float32 elements)", ylabel="NumPy time / Numba time")
    return fig


def timings_panel(timings: dict[str, np.ndarray]):
    """Slider over the array size -> the timing plot with that size marked."""
    lo, hi = (int(np.log2(s)) for s in timings["sizes"][[0, -1]])
    return panel(lambda size_log2: timings_figure(timings, size_log2),
                 {"size_log2": int_slider("size = 2 ** ", lo, hi, (lo + hi) // 2)})


def first_call_and_later(fn, *args, repeats: int = 5) -> tuple[float, float]:
    """(seconds of the first call, median seconds of later calls) of fn(*args).

    For a freshly made `@njit` function the first call includes type inference and compilation.
    """
    start = time.perf_counter()
    fn(*args)
    first = time.perf_counter() - start
    return first, median_time(lambda: fn(*args), repeats)


@functools.cache
def _contention_inputs(size: int):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    x = softmax_inputs(64 * ROW_LENGTH)
    return a, x, np.empty_like(x)


def blas_then_numba(rounds: int = 10, size: int = 256, limit_blas: bool = False) -> float:
    """Seconds for `rounds` times (a BLAS matrix product, then a parallel Numba kernel).

    With limit_blas=False, OpenBLAS may use all cores and its threads keep spinning after each
    product while Numba's threads want the same cores. With limit_blas=True the loop runs inside
    `threads.cpu_region()` (BLAS on one thread), as the "cpu" backend does.
    """
    import contextlib

    from ..kernels.softmax import softmax_rows
    from ..kernels.threads import cpu_region

    a, x, out = _contention_inputs(size)
    softmax_rows(x, out)  # compile outside the timing

    def loop():
        for _ in range(rounds):
            a @ a  # noqa: B018  (the product is the point: it wakes the BLAS threads)
            softmax_rows(x, out)

    with cpu_region() if limit_blas else contextlib.nullcontext():
        return median_time(loop, repeats=3)
