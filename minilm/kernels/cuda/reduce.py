"""Block-wide reductions through shared memory (chapter 11: GPUs with numba.cuda).

Softmax, LayerNorm and the k-bit GEMV each let a block of threads share one row: every thread
sums (or maxes) its strided part of the row, then the block combines the per-thread values in a
tree of halving steps through shared memory, with a barrier between steps:

    8 values   t0..t7
    step 4:    t0 += t4, t1 += t5, t2 += t6, t3 += t7
    step 2:    t0 += t2, t1 += t3
    step 1:    t0 += t1             -> the result is in scratch[0]

The k-bit GEMV reduces one value per row of x (up to 8) through the same barriers.
"""

from __future__ import annotations

from numba import cuda

SUM, MAX = 0, 1  # the reductions `block_reduce` knows


@cuda.jit(device=True)
def block_reduce_rows(scratch, rows, op):
    """Reduce the first `rows` rows of scratch, a shared float32 (R, blockDim.x) holding one
    value per thread in each row, in place: afterwards scratch[r, 0] is the sum (op=SUM) or
    maximum (op=MAX) of row r. Several rows share the same barriers. blockDim.x must be a
    power of two, and every thread of the block must call it (it has barriers)."""
    t = cuda.threadIdx.x
    cuda.syncthreads()  # every thread has written its values
    step = cuda.blockDim.x // 2
    while step > 0:
        if t < step:
            for r in range(rows):
                other = scratch[r, t + step]
                scratch[r, t] = max(scratch[r, t], other) if op == MAX else scratch[r, t] + other
        cuda.syncthreads()
        step //= 2


@cuda.jit(device=True)
def block_reduce(value, scratch, op):
    """The sum (op=SUM) or maximum (op=MAX) of `value` over the threads of a 1-D block; every
    thread gets it. scratch: shared float32 (1, blockDim.x)."""
    scratch[0, cuda.threadIdx.x] = value
    block_reduce_rows(scratch, 1, op)
    result = scratch[0, 0]
    cuda.syncthreads()  # everyone has read the result before the caller reuses scratch
    return result
