"""What the exercise notebooks' test cells share (their setup cells import it).

nbgrader scores a test cell that wrote to stderr as failed, and Numba prints its performance
hints there, so a correct solution could lose its points: `quiet_numba_hints` switches them off
(the tests check the parallel loops themselves, with `parallel_loops`, and the speed).

When graded, the test cells are run a second time in the grader's checker, where the student's
functions are only replayed from a record (scoring.py): the checker cannot look at them. So what
a test wants to know about the student's function itself (`is_numba_function`, `numba_options`,
`parallel_loops`) or its speed (`speed_ratio`) is a `fact`: computed in the student's kernel and
recorded, and the checker is told the value.

`speed_ratio` is how every speed check of the exercises measures: a correct solution must never
lose its points because the grading machine was busy (several students graded at once, other
programs), so the student's function and the reference take turns, each one's best time counts,
and a ratio over the limit is measured again before it costs anything.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass


def quiet_numba_hints() -> None:
    """Hide Numba's performance warnings (stderr output would fail an nbgrader test cell)."""
    import numba

    warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)


_fact_hook = None  # set while grading: see `fact`


def set_fact_hook(hook) -> None:
    """While grading, `hook(name, compute)` answers every fact (recorder.py, replay.py)."""
    global _fact_hook
    _fact_hook = hook


def fact(name: str, compute):
    """`compute()`: a fact about the student's code or its speed. While grading, the student's
    kernel computes it and the grader's checker is told the value (the checker cannot run the
    student's code); elsewhere it is simply computed."""
    return compute() if _fact_hook is None else _fact_hook(name, compute)


def _target(fn):
    return getattr(fn, "recorded_target", fn)  # the function itself while it is recorded


def is_numba_function(fn) -> bool:
    """Whether `fn` is a function compiled by Numba on the CPU (made with `@njit`)."""
    def compute():
        import numba

        return isinstance(_target(fn), numba.core.registry.CPUDispatcher)
    return fact("is_numba_function", compute)


def numba_options(fn) -> dict:
    """The options `fn` was compiled with (`{"parallel": True, "fastmath": True, ...}`), {} for a
    function that is not a Numba function."""
    def compute():
        options = getattr(_target(fn), "targetoptions", None)
        if not isinstance(options, dict):
            return {}
        return {str(k): v for k, v in options.items() if isinstance(v, bool | int | float | str)}
    return fact("numba_options", compute)


def parallel_loops(fn) -> int:
    """The number of parallel loops Numba made of the compiled function `fn` (its last
    compiled signature): 0 means `prange` did not give a parallel loop."""
    def compute():
        target = _target(fn)
        return int(target.get_metadata(target.signatures[-1])["parfor_diagnostics"]
                   .count_parfors())
    return fact("parallel_loops", compute)


@dataclass(frozen=True)
class Speed:
    """The outcome of `speed_ratio`: times in seconds, ratio = yours / reference."""
    ratio: float
    yours: float
    reference: float
    rounds: int  # measurements made (more than one: the first were over the limit)

    def __str__(self) -> str:
        again = f", best of {self.rounds} measurements" if self.rounds > 1 else ""
        return (f"yours {self.yours * 1e3:.3f} ms, reference {self.reference * 1e3:.3f} ms: "
                f"{self.ratio:.2f}x its time (best of interleaved runs{again})")


def speed_ratio(yours, reference, limit: float, repeats: int = 7, rounds: int = 3) -> Speed:
    """How many times the reference's time `yours()` takes, measured fairly on a busy machine:
    the two calls take turns `repeats` times (a busy moment hits both alike), each one's minimum
    counts (the run with the least interference), BLAS is single-threaded meanwhile (its spinning
    threads would steal the cores of a Numba kernel timed next), and while the ratio is above
    `limit` the measurement is made again, up to `rounds` in all, the best ratio counting. Both
    functions have been called (compiled, warm) before."""
    if not (repeats >= 1 and rounds >= 1 and limit > 0):
        raise ValueError(f"need repeats >= 1, rounds >= 1 and limit > 0, got {repeats}, "
                         f"{rounds}, {limit}")
    return fact("speed_ratio", lambda: _measure(yours, reference, limit, repeats, rounds))


def _measure(yours, reference, limit: float, repeats: int, rounds: int) -> Speed:
    from ..kernels.threads import cpu_region

    measured = []
    with cpu_region():
        while len(measured) < rounds and not (measured and measured[-1].ratio <= limit):
            mine, theirs = [], []
            for _ in range(repeats):
                for fn, times in ((reference, theirs), (yours, mine)):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
            measured.append(Speed(min(mine) / min(theirs), min(mine), min(theirs), 0))
    best = min(measured, key=lambda speed: speed.ratio)
    return Speed(best.ratio, best.yours, best.reference, len(measured))
