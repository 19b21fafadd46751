"""What the exercise notebooks' test cells share (the setup cells of chapters 1, 3 and 4).

nbgrader scores a test cell that wrote to stderr as failed, and Numba prints its performance
hints there, so a correct solution could lose its points: `quiet_numba_hints` switches them off
(the tests check the parallel loops themselves, with `parallel_loops`, and the speed).
"""

from __future__ import annotations

import warnings


def quiet_numba_hints() -> None:
    """Hide Numba's performance warnings (stderr output would fail an nbgrader test cell)."""
    import numba

    warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)


def parallel_loops(fn) -> int:
    """The number of parallel loops Numba made of the compiled function `fn` (its last
    compiled signature): 0 means `prange` did not give a parallel loop."""
    return fn.get_metadata(fn.signatures[-1])["parfor_diagnostics"].count_parfors()
