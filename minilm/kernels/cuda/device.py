"""Which CUDA device the "cuda" backend runs on (a real GPU or Numba's simulator), the error
when there is neither, and the launch arithmetic every kernel shares (chapter 11).

Numba decides at import time: with `NUMBA_ENABLE_CUDASIM=1` in the environment *before numba is
imported*, `numba.cuda` is a simulator that runs each CUDA thread as a Python thread on the CPU
(slow, but every kernel runs and can be debugged with print and pdb). Otherwise `numba.cuda`
compiles for the NVIDIA GPU the driver shows.

The simulator starts one OS thread per CUDA thread, so thread blocks are kept small there
(`THREADS`, `TILE`); on a GPU they are the usual sizes. The kernels work for any of them.
"""

from __future__ import annotations

import functools
import os

import numba
from numba import cuda

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
SIMULATOR_HINT = ("set NUMBA_ENABLE_CUDASIM=1 in the environment before numba is imported "
                  "(e.g. `NUMBA_ENABLE_CUDASIM=1 python ...`) to run the CUDA kernels in "
                  "Numba's CUDA simulator on the CPU")

THREADS = 8 if SIMULATOR else 128  # threads per block of the 1-D kernels (a power of two)
TILE = 4 if SIMULATOR else 16  # side of the square thread blocks and shared-memory tiles


class CudaUnavailableError(NotImplementedError):
    """backend="cuda" was asked for on a machine with neither a usable GPU nor the simulator.

    A NotImplementedError (the backend is not available here), which the `minilm` command
    prints as one line."""


@functools.cache
def gpu_name() -> str | None:
    """The name of the GPU numba.cuda sees, or None (no GPU, no driver, or the simulator)."""
    if SIMULATOR:
        return None
    try:
        if not cuda.is_available():
            return None
        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # a broken driver install means "no GPU" here, never a crash
        return None


def describe() -> str:
    """One line for `minilm info`: what backend="cuda" runs on right now."""
    if SIMULATOR:
        return "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1; slow, for tests and learning)"
    name = gpu_name()
    if name:
        return f"GPU {name}"
    return f"unavailable (no CUDA GPU visible to numba.cuda; {SIMULATOR_HINT})"


def require() -> None:
    """Raise `CudaUnavailableError` (naming how to enable the simulator) unless a GPU or the
    simulator is usable."""
    if SIMULATOR or gpu_name():
        return
    late = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    detail = ("NUMBA_ENABLE_CUDASIM=1 is set, but only after numba was imported, so numba "
              "ignored it; " if late else "")
    raise CudaUnavailableError(f"backend='cuda' needs an NVIDIA GPU with a working CUDA driver, "
                               f"and numba.cuda sees none; {detail}{SIMULATOR_HINT}")


def blocks(n: int, per_block: int) -> int:
    """Blocks of `per_block` threads needed to cover n items (the last block is partly idle)."""
    return max(1, -(-n // per_block))



def to_device(a):
    """Copy a host array to the device, after checking that there is one (see `require`)."""
    require()
    return cuda.to_device(a)
