"""Benchmarks behind `minilm bench`: check each kernel against its reference, then time it.

Every case first compares the fast result with the NumPy reference (same inputs, tolerance
`atol + rtol*|ref|`); only a checked result is timed. Times are medians of several runs after a
warm-up call (which also compiles), and each fast time is divided into the NumPy reference time
measured in the same process, so the ratio means something on a noisy shared machine.
Chapter 1 explains how to measure; chapters 3, 5 and 9 quote these figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# OpenBLAS worker threads spin for a while after a product and slow down Numba threads started
# right after it; a short pause between the baseline and the variants keeps the timings fair.
BLAS_SPIN_PAUSE = 0.3


@dataclass
class Result:
    """One timed variant: `rate` is work per second in `unit` (GFLOP/s, GB/s or tok/s)."""

    case: str
    variant: str
    seconds: float
    rate: float
    unit: str
    baseline_seconds: float | None = None

    @property
    def speedup(self) -> float | None:
        """How many times faster than the baseline (NumPy reference) in the same run."""
        return None if self.baseline_seconds is None else self.baseline_seconds / self.seconds


def median_time(fn: Callable[[], object], repeats: int = 7, min_seconds: float = 0.0) -> float:
    """Median wall time of `fn()` over `repeats` runs (after one warm-up call)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def check_close(name: str, out, ref, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise AssertionError unless |out - ref| <= atol + rtol*|ref| everywhere."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise AssertionError(f"{name}: shape {out.shape} differs from the reference {ref.shape}")
    excess = np.abs(out - ref) - (atol + rtol * np.abs(ref))
    if not np.all(excess <= 0):
        raise AssertionError(f"{name}: differs from the reference by up to "
                             f"{np.nanmax(np.abs(out - ref)):.3g} (atol={atol}, rtol={rtol})")


def compare(case: str, variants: dict[str, Callable], reference: Callable, work: float,
            unit: str, repeats: int, atol=1e-5, rtol=1e-4,
            baseline_name: str = "numpy reference") -> Iterator[Result]:
    """Check every variant against `reference`, then time them all; `work` is per call."""
    expected = reference()
    for name, fn in variants.items():
        check_close(f"{case} {name}", fn(), expected, atol, rtol)
    base = median_time(reference, repeats)
    yield Result(case, baseline_name, base, work / base, unit, base)
    for name, fn in variants.items():
        time.sleep(BLAS_SPIN_PAUSE)
        seconds = median_time(fn, repeats)
        yield Result(case, name, seconds, work / seconds, unit, base)


def format_table(results: list[Result]) -> str:
    rows = [("case", "variant", "median ms", "rate", "x baseline")]
    for r in results:
        speedup = "" if r.speedup is None else f"{r.speedup:.2f}x"
        rows.append((r.case, r.variant, f"{r.seconds * 1e3:.3f}", f"{r.rate:,.1f} {r.unit}",
                     speedup))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(cases: list[str] | None = None, quick: bool = False, backend: str = "cpu",
        echo: Callable[[str], None] = print) -> list[Result]:
    """Run the named cases (all by default) and print one table per case as it finishes."""
    from .bench_cases import CASES as MODEL_CASES
    from .bench_cuda import CASES as CUDA_CASES
    from .kbit.bench_cases import CASES as KBIT_CASES

    CASES = CUDA_CASES if backend == "cuda" else {**MODEL_CASES, **KBIT_CASES}
    names = cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s) {unknown}; choose from {list(CASES)}")
    results = []
    for name in names:
        case_results = list(CASES[name](quick=quick, backend=backend))
        echo(format_table(case_results) + "\n")
        results.extend(case_results)
    return results
