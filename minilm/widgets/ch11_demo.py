"""Chapter 11: the kernels the chapter runs in Numba's CUDA simulator (or on a GPU).

`python -m minilm.widgets.ch11_demo` (what `ch11_cuda.run_simulated` starts, with
NUMBA_ENABLE_CUDASIM=1) runs `simulator_demo`: a kernel that reports which block and thread
handled each element, then the library's CUDA attention and k-bit GEMV against their references.
Importing this module imports numba.cuda, so the notebook only shows it with `inspect`.
"""

from __future__ import annotations

import time

import numpy as np
from numba import cuda

from .. import kbit
from ..kernels import reference
from ..kernels.cuda import ATTENTION_VERSIONS
from ..kernels.cuda.device import describe


@cuda.jit
def who_am_i(out):
    """out (n, 2): the (blockIdx.x, threadIdx.x) of the thread that handled element i."""
    i = cuda.grid(1)  # = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if i < out.shape[0]:  # the last block may have more threads than elements left
        out[i, 0] = cuda.blockIdx.x
        out[i, 1] = cuda.threadIdx.x


def simulator_demo() -> None:
    """What the chapter runs in the simulator: a kernel that reports its own indices, then the
    library's CUDA attention and k-bit GEMV checked against their references (tiny shapes)."""
    print(describe())
    out = np.zeros((10, 2), np.int32)
    who_am_i[3, 4](out)  # 3 blocks of 4 threads for 10 elements: two threads stay idle
    print("who_am_i[3, 4] over 10 elements -> (blockIdx.x, threadIdx.x) per element:")
    print("  " + " ".join(f"{i}:({b},{t})" for i, (b, t) in enumerate(out)))

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 12, 8), dtype=np.float32) for _ in range(3))  # (H, T, D)
    expected = reference.attention(q, k, v, causal=True)
    for name, attention in ATTENTION_VERSIONS.items():
        started = time.perf_counter()
        error = np.abs(attention(q, k, v, causal=True) - expected).max()
        print(f"attention {name} (H=2, T=12, D=8): max |error| vs reference {error:.1e}, "
              f"{time.perf_counter() - started:.2f} s simulated")
    w = rng.standard_normal((4, 64), dtype=np.float32)  # (N, K): 4 thread blocks in v2
    x = rng.standard_normal((1, 64), dtype=np.float32)
    qt = kbit.quantize(w, bits=4, dtype="nf", block_size=64)
    started = time.perf_counter()
    error = np.abs(kbit.matmul(x, qt, backend="cuda") - kbit.matmul_reference(x, qt)).max()
    print(f"4-bit GEMV (N=4, K=64): max |error| vs reference {error:.1e}, "
          f"{time.perf_counter() - started:.2f} s simulated")


if __name__ == "__main__":
    simulator_demo()
