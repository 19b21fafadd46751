"""Register tiles for attention scores: the backward's (chapter 6) and the forward v3's.

`backward_cpu._attention_backward` needs, for a block of 4 query rows, the scores q_i . k_j and
the products d_out_i . v_j for every key j. Written as loops, each of the D terms is added into
rows in memory, so every multiply-add also loads and stores its partial sum: the loop is bound
by stores. `score_tile` instead keeps the 4 x 8 partial sums of both products (8 vectors of 8
floats) in registers over all D terms and stores them once: per term it loads one vector of k
and one of v and broadcasts the 8 row values. It is vector LLVM IR (the `minilm.kbit.llvm_ir`
helpers), generic, so it compiles for any CPU LLVM targets. The forward attention v3 uses the
same tile for its scores alone: 8 query rows (q and e = the next 4 rows) against k twice.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..kbit import llvm_ir as L

TILE = 8  # keys per tile: one float32 vector of 8 lanes
ROWS = 4  # query rows per tile


@intrinsic
def score_tile(typingctx, q, e, k, v, n_dims, k_stride, p, d_p, p_stride):
    """p[r, :8] = sum_c q[r, c] k[c, :8] and d_p[r, :8] = sum_c e[r, c] v[c, :8], r < ROWS.

    Addresses (intp): q, e: (ROWS, n_dims) contiguous float32; k, v: n_dims rows of 8 floats,
    k_stride bytes apart; p, d_p: ROWS rows of 8 floats, p_stride bytes apart."""

    def codegen(context, builder, signature, args):
        q, e, k, v, n_dims, k_stride, p, d_p, p_stride = args
        sums = [cgutils.alloca_once_value(builder, L.const(L.V8F32, 0.0))
                for _ in range(2 * ROWS)]  # p rows, then d_p rows
        row_bytes = builder.mul(n_dims, ir.Constant(L.I64, 4))
        row_offsets = [builder.mul(ir.Constant(L.I64, r), row_bytes) for r in range(ROWS)]
        with cgutils.for_range(builder, n_dims) as loop:
            key_offset = builder.mul(loop.index, k_stride)
            k_c = L.load(builder, builder.add(k, key_offset), L.V8F32)
            v_c = L.load(builder, builder.add(v, key_offset), L.V8F32)
            for r, row_offset in enumerate(row_offsets):
                for total, rows, keys in ((sums[r], q, k_c), (sums[ROWS + r], e, v_c)):
                    at = L.at(builder, builder.add(rows, row_offset), loop.index, 4)  # [r, c]
                    value = L.broadcast(builder, L.load(builder, at, L.F32), L.V8F32)
                    builder.store(L.fma(builder, value, keys, builder.load(total)), total)
        for r in range(ROWS):
            row = builder.mul(ir.Constant(L.I64, r), p_stride)
            L.store(builder, builder.load(sums[r]), builder.add(p, row))
            L.store(builder, builder.load(sums[ROWS + r]), builder.add(d_p, row))
        return context.get_dummy_value()

    return types.void(*[types.intp] * 9), codegen
