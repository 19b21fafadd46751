"""LLVM IR helpers for the hand-vectorised kernels (chapters 8 and 9).

Numba compiles Python to LLVM IR and LLVM vectorises simple loops by itself. Where it cannot
(gathering 3-byte groups, table lookups in registers), a Numba `@intrinsic` writes the loop body
as vector IR directly; these helpers keep that code short. Addresses are plain integers
(`array.ctypes.data`), so an intrinsic takes `intp` arguments only.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

I8, I16, I32, I64, F32 = (ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64),
                          ir.FloatType())
V8I8, V16I8, V32I8, V16I16, V8I32, V4I64, V8F32 = (
    ir.VectorType(I8, 8), ir.VectorType(I8, 16), ir.VectorType(I8, 32), ir.VectorType(I16, 16),
    ir.VectorType(I32, 8), ir.VectorType(I64, 4), ir.VectorType(F32, 8))


def const(ty, values):
    """A vector constant: one value for every lane, or a list of lane values."""
    return ir.Constant(ty, list(values) if np.ndim(values) else [values] * ty.count)


def zeros(ty):
    """The all-zero value of a type."""
    return ir.Constant(ty, None)


def mask(values):
    """A shufflevector mask (i32 lane indices)."""
    values = list(values)
    return const(ir.VectorType(I32, len(values)), values)


def pointer(builder, address, ty, offset=0):
    return builder.inttoptr(builder.add(address, ir.Constant(I64, offset)), ty.as_pointer())


def load(builder, address, ty, offset=0):
    """An unaligned load of type `ty` from byte address `address + offset`."""
    return builder.load(pointer(builder, address, ty, offset), align=1)


def store(builder, value, address, offset=0):
    builder.store(value, pointer(builder, address, value.type, offset), align=1)


def at(builder, base, index, stride):
    """Byte address base + index * stride."""
    return builder.add(base, builder.mul(index, ir.Constant(I64, stride)))


def concat(builder, a, b):
    """Two vectors of n lanes -> one of 2n lanes."""
    return builder.shuffle_vector(a, b, mask(range(2 * a.type.count)))


def broadcast(builder, scalar, ty):
    """A vector of type `ty` with `scalar` in every lane."""
    one = builder.insert_element(ir.Constant(ty, None), scalar, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, one, mask([0] * ty.count))


def fma(builder, a, b, c):
    """a * b + c in one rounding, lane by lane (the `llvm.fma` intrinsic: one instruction)."""
    fnty = ir.FunctionType(a.type, [a.type] * 3)
    name = f"llvm.fma.v{a.type.count}f32"
    return builder.call(builder.module.declare_intrinsic(name, fnty=fnty), [a, b, c])


def horizontal_sum(builder, vector):
    """The sum of the lanes of a float vector (once per row: its speed does not matter)."""
    total = builder.extract_element(vector, ir.Constant(I32, 0))
    for i in range(1, vector.type.count):
        total = builder.fadd(total, builder.extract_element(vector, ir.Constant(I32, i)))
    return total
