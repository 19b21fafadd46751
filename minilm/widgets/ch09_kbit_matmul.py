"""Chapter 9 (the k-bit matmul): measured time and GB/s of `kbit.matmul` vs float32, a roofline.

    peaks = machine_peaks()                        # copy GB/s and BLAS GFLOP/s of this machine
    m = measure_matmul(bits=4, rows=1)             # k-bit kernel vs float32 x @ W.T, checked
    fig = matmul_figure(bits=4, rows=1)            # time bars + the roofline with both points
    rows = versions_table(bits=4)                  # every entry of kbit.MATMUL_VERSIONS timed
    matmul_panel()                                 # sliders: bits, batch rows

Every measurement first checks the k-bit result against float32 `x @ W.T` with W the
dequantized weight (`minilm.bench.compare`), then times both in the same process. Shapes are
small (2048 x 2048 by default) so a slider move costs a fraction of a second; results are cached
per (bits, rows, shape), so moving back is instant.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from .. import kbit
from ..bench import BLAS_SPIN_PAUSE, check_close, compare, median_time
from ..kbit.bench_cases import random_qt
from ..kbit.matmul_kernels import GEMV_ROWS
from ..kbit.simd import supports as simd_supports
from .caption import caption
from .common import figure, int_slider, panel

SHAPE = (2048, 2048)  # (N, K) of the weight: 16 MiB as float32
ROW_CHOICES = (1, 2, 4, 8, 16, 32, 64)


def default_dtype(bits: int) -> str:
    """The codebook the measurements use: "nf", except 8 bits "int" (its SIMD kernel)."""
    return "int" if bits == 8 else "nf"


@functools.cache
def machine_peaks() -> dict:
    """{"copy_gb_s": memory bandwidth of a 64 MiB np.copyto (read + write),
    "blas_gflop_s": float32 matrix product 1024^3}: the two roofs of this machine."""
    src = np.ones(2**24, np.float32)
    dst = np.empty_like(src)
    copy = median_time(lambda: np.copyto(dst, src), 5)
    a = np.ones((1024, 1024), np.float32)
    product = median_time(lambda: a @ a, 3)
    return {"copy_gb_s": 2 * src.nbytes / 1e9 / copy, "blas_gflop_s": 2 * 1024**3 / 1e9 / product}


def kernel_path(qt, rows: int) -> str:
    """Which code `kbit.matmul` runs for these weights and this many rows of x (see matmul.py)."""
    if rows <= GEMV_ROWS:
        return "v3: SIMD GEMV" if simd_supports(qt) else "v2: LUT GEMV (no SIMD kernel for this)"
    return "v3: decoded tiles x BLAS"


@functools.lru_cache(maxsize=128)
def measure_matmul(bits: int = 4, rows: int = 1, shape: tuple = SHAPE, repeats: int = 7) -> dict:
    """Time `kbit.matmul(x, qt)` against float32 `x @ W.T` for x (rows, K), W (N, K).

    Returns {"bits", "rows", "shape", "path", "kbit_s", "float32_s", "kbit_bytes",
    "float32_bytes", "kbit_gb_s", "float32_gb_s", "kbit_gflop_s", "float32_gflop_s"}; GB/s
    counts the weight bytes each one reads (packed codes + scales, or float32)."""
    n, k = shape
    qt = random_qt(n, k, bits, default_dtype(bits))
    w = qt.dequantize()  # (N, K) float32
    x = np.random.default_rng(1).standard_normal((rows, k), dtype=np.float32)
    reference = x @ w.T
    tolerance = 1e-3 * float(np.abs(reference).max())  # v3 rounds x to int16 (see simd.py)
    base, fast = compare(f"{bits}-bit matmul", {"kbit": lambda: kbit.matmul(x, qt)},
                         lambda: x @ w.T, qt.nbytes / 1e9, "GB/s", repeats, atol=tolerance,
                         rtol=0)
    flops = 2 * rows * n * k / 1e9
    return {"bits": bits, "rows": rows, "shape": shape, "path": kernel_path(qt, rows),
            "kbit_s": fast.seconds, "float32_s": base.seconds, "kbit_bytes": qt.nbytes,
            "float32_bytes": w.nbytes, "kbit_gb_s": qt.nbytes / 1e9 / fast.seconds,
            "float32_gb_s": w.nbytes / 1e9 / base.seconds, "kbit_gflop_s": flops / fast.seconds,
            "float32_gflop_s": flops / base.seconds}


def describe(m: dict) -> str:
    return (f"{m['bits']}-bit weights {m['shape'][0]}x{m['shape'][1]}, x has {m['rows']} "
            f"row(s), kernel {m['path']}:\n"
            f"  float32 x @ W.T  {m['float32_s'] * 1e3:8.3f} ms  "
            f"{m['float32_gb_s']:7.1f} GB/s  {m['float32_gflop_s']:7.1f} GFLOP/s  "
            f"({m['float32_bytes'] / 2**20:.2f} MiB of weights)\n"
            f"  kbit.matmul      {m['kbit_s'] * 1e3:8.3f} ms  {m['kbit_gb_s']:7.1f} GB/s  "
            f"{m['kbit_gflop_s']:7.1f} GFLOP/s  ({m['kbit_bytes'] / 2**20:.2f} MiB)  -> "
            f"{m['float32_s'] / m['kbit_s']:.2f}x the float32 speed")


def intensity(bits_per_weight: float, rows: int) -> float:
    """FLOP per byte of weights read: 2 * rows FLOP per weight over bits/8 bytes."""
    return 2 * rows / (bits_per_weight / 8)


def roofline_axes(ax, peaks: dict, points: list[tuple[str, float, float, str]]):
    """Draw the roofline min(peak, bandwidth * intensity) and the (label, intensity, GFLOP/s,
    colour) points on a log-log axes."""
    x = np.logspace(-1, 3, 200)
    ax.plot(x, np.minimum(peaks["blas_gflop_s"], peaks["copy_gb_s"] * x), "k-", lw=1.5,
            label=f"roof: {peaks['copy_gb_s']:.0f} GB/s, {peaks['blas_gflop_s']:.0f} GFLOP/s")
    for label, at, rate, color in points:
        ax.plot([at], [rate], "o", color=color, ms=8, label=label)
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP per weight byte)",
           ylabel="GFLOP/s", title="roofline")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")


def matmul_figure(bits: int = 4, rows: int = 1, shape: tuple = SHAPE):
    """Left: time of float32 vs k-bit. Right: both on this machine's roofline."""
    m = measure_matmul(bits, rows, shape)
    fig = figure(11, 3.8)
    left, right = fig.subplots(1, 2)
    names = ["float32", f"{bits}-bit"]
    times = [m["float32_s"] * 1e3, m["kbit_s"] * 1e3]
    left.bar(names, times, color=["tab:gray", "tab:green"])
    for i, (t, rate) in enumerate(zip(times, (m["float32_gb_s"], m["kbit_gb_s"]), strict=True)):
        left.text(i, t, f"{t:.2f} ms\n{rate:.1f} GB/s", ha="center", va="bottom")
    left.set(ylabel="ms per call", ylim=(0, 1.3 * max(times)),
             title=f"x ({rows}, {shape[1]}) @ W.T, W {shape[0]}x{shape[1]}")
    bits_per_param = 8 * m["kbit_bytes"] / (shape[0] * shape[1])
    roofline_axes(right, machine_peaks(), [
        ("float32", intensity(32, rows), m["float32_gflop_s"], "tab:gray"),
        (f"{bits}-bit ({bits_per_param:.2f} bits/weight)", intensity(bits_per_param, rows),
         m["kbit_gflop_s"], "tab:green")])
    return fig


def versions_table(bits: int = 4, shape: tuple = (1024, 1024), rows: int = 1,
                   repeats: int = 5) -> list[dict]:
    """Each entry of `kbit.MATMUL_VERSIONS` checked against the reference and timed (rows of
    x = `rows`): [{"version", "seconds", "gb_s", "first_call_s"}], first_call_s including the
    compile of a Numba version."""
    n, k = shape
    qt = random_qt(n, k, bits, default_dtype(bits))
    x = np.random.default_rng(1).standard_normal((rows, k), dtype=np.float32)
    reference = kbit.matmul_reference(x, qt)
    tolerance = 1e-3 * float(np.abs(reference).max())
    table = []
    for name, fn in kbit.MATMUL_VERSIONS.items():
        started = time.perf_counter()
        check_close(f"matmul {name}", fn(x, qt), reference, tolerance, 0)
        first = time.perf_counter() - started
        time.sleep(BLAS_SPIN_PAUSE)
        seconds = median_time(lambda f=fn: f(x, qt), repeats)
        table.append({"version": name, "seconds": seconds, "gb_s": qt.nbytes / 1e9 / seconds,
                      "first_call_s": first})
    return table


def matmul_panel(shape: tuple = SHAPE):
    """Sliders bits and batch rows over `matmul_figure` and `describe`."""
    import ipywidgets as W

    controls = {
        "bits": int_slider("bits", 2, 8, 4),
        "rows": W.SelectionSlider(options=ROW_CHOICES, value=1, description="batch rows",
                                  continuous_update=False),
    }
    return panel(lambda bits, rows: (matmul_figure(bits, rows, shape),
                                     caption(describe(measure_matmul(bits, rows, shape)))),
                 controls)
