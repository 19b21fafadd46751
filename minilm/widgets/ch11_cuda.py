"""Chapter 11 (GPUs with numba.cuda): the launch grid, coalescing, and kernels in the simulator.

    fig = grid_figure(n=40, threads_per_block=8)   # which block and thread handles element i
    fig = coalescing_figure(stride=4)              # 128-byte segments one warp's load touches
    launch_panel()                                 # sliders: elements, threads per block, stride
    print(run_simulated())                         # ch11_demo.py in a subprocess with
                                                   # NUMBA_ENABLE_CUDASIM=1
    gpu_name()                                     # the GPU numba.cuda sees, or None

The simulator must be switched on before numba is imported, and the notebook's kernel has
imported numba long before, so the simulated kernels (ch11_demo.py) run in a fresh Python
process (`python -m minilm.widgets.ch11_demo`), which prints what it did.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from .caption import caption
from .common import figure, int_slider, panel

WARP = 32  # threads that issue one memory instruction together
SEGMENT = 128  # bytes of one memory transaction (a cache line)


def thread_layout(n: int, threads_per_block: int) -> dict:
    """For a 1-D launch over n elements: blocks = ceil(n / threads); element i is handled by
    block i // threads, thread i % threads (i = blockIdx.x * blockDim.x + threadIdx.x).
    Returns {"n_blocks", "block" (n,), "thread" (n,), "idle_threads"}."""
    if n < 1 or threads_per_block < 1:
        raise ValueError(f"n and threads_per_block must be >= 1, got {n}, {threads_per_block}")
    i = np.arange(n)
    n_blocks = -(-n // threads_per_block)
    return {"n_blocks": n_blocks, "block": i // threads_per_block,
            "thread": i % threads_per_block, "idle_threads": n_blocks * threads_per_block - n}


def grid_figure(n: int = 40, threads_per_block: int = 8):
    """The elements of an array coloured by their block, labelled with their threadIdx.x."""
    import matplotlib
    from matplotlib.patches import Rectangle

    layout = thread_layout(n, threads_per_block)
    width = layout["n_blocks"] * threads_per_block  # launched threads
    per_row = min(width, 64)
    colors = matplotlib.colormaps["tab20"]
    fig = figure(11, 0.9 + 0.45 * -(-width // per_row))
    ax = fig.subplots()
    for t in range(width):  # every launched thread; the idle ones hatched
        row, col = divmod(t, per_row)
        block, thread = divmod(t, threads_per_block)
        idle = t >= n
        ax.add_patch(Rectangle((col, -row), 0.95, 0.9, facecolor="white" if idle else
                               colors(block % 20), hatch="//" if idle else None,
                               edgecolor="k", lw=0.4))
        if per_row <= 40:
            ax.text(col + 0.47, -row + 0.45, str(thread), ha="center", va="center", fontsize=7)
    ax.set(xlim=(0, per_row), ylim=(-(width - 1) // per_row - 0.1, 1), xticks=[], yticks=[],
           title=f"{n} elements, {threads_per_block} threads per block -> "
                 f"{layout['n_blocks']} blocks (colours), {layout['idle_threads']} idle "
                 "threads (hatched: `if i < n` keeps them out); numbers: threadIdx.x")
    ax.set_frame_on(False)
    return fig


def segments_touched(stride: int, item_bytes: int = 4) -> int:
    """128-byte segments one warp touches when thread t reads item t * stride."""
    addresses = np.arange(WARP) * stride * item_bytes
    return int(np.unique(addresses // SEGMENT).size)


def coalescing_figure(stride: int = 1, item_bytes: int = 4):
    """Top: the float32 items a warp reads (thread t reads item t * stride) over the 128-byte
    segments of memory. Bottom: bytes used / bytes moved for strides 1..32."""
    fig = figure(11, 4.2)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.3]})
    touched = segments_touched(stride, item_bytes)
    addresses = np.arange(WARP) * stride * item_bytes
    span = max(addresses[-1] + item_bytes, SEGMENT)
    for s in range(-(-span // SEGMENT)):
        used = np.any(addresses // SEGMENT == s)
        top.axvspan(s * SEGMENT, (s + 1) * SEGMENT, color="tab:orange" if used else "0.95",
                    alpha=0.35 if used else 1, lw=0)
        top.axvline(s * SEGMENT, color="0.5", lw=0.5)
    top.plot(addresses, np.zeros(WARP), "|", ms=18, color="tab:blue")
    top.set(yticks=[], xlabel="byte address", xlim=(0, -(-span // SEGMENT) * SEGMENT),
            title=f"stride {stride}: a warp's 32 loads of {item_bytes} bytes touch {touched} "
                  f"segment(s) of {SEGMENT} B -> {WARP * item_bytes} of {touched * SEGMENT} "
                  "bytes moved are used")
    strides = np.arange(1, 33)
    efficiency = [WARP * item_bytes / (segments_touched(s, item_bytes) * SEGMENT)
                  for s in strides]
    bottom.plot(strides, efficiency, "o-", ms=3)
    bottom.plot([stride], [WARP * item_bytes / (touched * SEGMENT)], "o", ms=10, mfc="none",
                mec="k")
    bottom.set(xlabel="stride (items)", ylabel="useful fraction", ylim=(0, 1.05))
    bottom.grid(alpha=0.3)
    return fig


def launch_panel():
    """Sliders: elements and threads per block (grid), stride (coalescing)."""
    return panel(lambda n, threads_per_block, stride: (
        grid_figure(n, threads_per_block), coalescing_figure(stride),
        caption(f"launch: kernel[{-(-n // threads_per_block)}, {threads_per_block}](...)  "
                f"stride {stride}: {segments_touched(stride)} memory transaction(s) per warp")),
        {"n": int_slider("elements n", 1, 100, 40),
         "threads_per_block": int_slider("threads per block", 1, 32, 8),
         "stride": int_slider("stride", 1, 32, 1)})


def gpu_name() -> str | None:
    """The name of the NVIDIA GPU numba.cuda sees (None without one, or in the simulator)."""
    from ..kernels.cuda.device import gpu_name as device_gpu_name

    return device_gpu_name()


def run_simulated(timeout: float = 300) -> str:
    """Run `ch11_demo.simulator_demo` in a new Python process with the CUDA simulator on;
    return what it printed."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run([sys.executable, "-m", "minilm.widgets.ch11_demo"], env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"the simulated run failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout
