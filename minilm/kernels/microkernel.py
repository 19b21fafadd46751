"""The register-tile micro-kernel behind the attention kernels (forward v3 and the backward).

Taught in chapter 6 (training), used since chapter 3 (attention v3). Every product in attention
is a small matrix product: the scores q k^T and d_out v^T, the output p v, and the gradients
d_s k, d_s^T q and p^T d_out. Written as loops over memory, each multiply-add also loads and
stores its partial sum, and the loop is bound by memory operations instead of arithmetic.
`tile_product` is the inner piece of every fast matrix-multiply library (a BLAS "micro-kernel"):

    C[r, :16] (+)= sum_s A[r, s] * B[s, :16]        for the ROWS = 6 rows r of the tile

It keeps the 6 x 16 block of C in 12 vector registers (of 8 floats) for the whole sum, and per
step s loads the two vectors of B[s] and broadcasts the 6 values A[r, s]: 8 loads feed 12 fused
multiply-adds, so the loop runs at the speed of the FMA units, not of memory. C is read (when
accumulating) and written once. With 12 sums, 2 vectors of B and 1 broadcast it uses 15 of the
16 AVX2 vector registers; more rows would spill.

The matrices are given as byte addresses and byte strides, so one kernel serves every layout:
A[r, s] is at `a + r * a_row + s * a_step` (a transposed A is just swapped strides), B[s] is 16
contiguous floats at `b + s * b_step`, C[r] is 16 contiguous floats at `c + r * c_row`. The
caller pads its arrays so that whole tiles stay inside them. It is vector LLVM IR (the
`minilm.kbit.llvm_ir` helpers), generic, so it compiles for any CPU LLVM targets.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..kbit import llvm_ir as L

ROWS = 6  # rows of a tile
VECTORS = 2  # vectors of 8 floats per tile row
COLS = 8 * VECTORS  # columns of a tile


@intrinsic
def tile_product(typingctx, a, a_row, a_step, b, b_step, steps, c, c_row, accumulate):
    """C[r, :COLS] = (C[r, :COLS] if accumulate else 0) + sum_{s < steps} A[r, s] B[s, :COLS]
    for r < ROWS, float32; every argument an intp (addresses and strides in bytes)."""

    def codegen(context, builder, signature, args):
        a, a_row, a_step, b, b_step, steps, c, c_row, accumulate = args
        sums = [[cgutils.alloca_once_value(builder, L.zeros(L.V8F32)) for _ in range(VECTORS)]
                for _ in range(ROWS)]
        a_rows = [builder.mul(ir.Constant(L.I64, r), a_row) for r in range(ROWS)]
        c_rows = [builder.add(c, builder.mul(ir.Constant(L.I64, r), c_row)) for r in range(ROWS)]
        with builder.if_then(builder.icmp_signed("!=", accumulate, ir.Constant(L.I64, 0))):
            for c_r, sums_r in zip(c_rows, sums, strict=True):
                for v, total in enumerate(sums_r):
                    builder.store(L.load(builder, c_r, L.V8F32, 32 * v), total)
        with cgutils.for_range(builder, steps) as loop:
            a_s = builder.add(a, builder.mul(loop.index, a_step))  # address of A[0, s]
            b_s = builder.add(b, builder.mul(loop.index, b_step))  # address of B[s]
            b_vectors = [L.load(builder, b_s, L.V8F32, 32 * v) for v in range(VECTORS)]
            for a_row_offset, sums_r in zip(a_rows, sums, strict=True):
                a_rs = L.load(builder, builder.add(a_s, a_row_offset), L.F32)  # A[r, s]
                a_rs = L.broadcast(builder, a_rs, L.V8F32)
                for b_vector, total in zip(b_vectors, sums_r, strict=True):
                    builder.store(L.fma(builder, a_rs, b_vector, builder.load(total)), total)
        for c_r, sums_r in zip(c_rows, sums, strict=True):
            for v, total in enumerate(sums_r):
                L.store(builder, builder.load(total), c_r, 32 * v)
        return context.get_dummy_value()

    return types.void(*[types.intp] * 9), codegen
