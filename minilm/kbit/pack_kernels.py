"""Numba kernels for `kbit.pack` / `kbit.unpack` (chapter 8); the spec is `pack_reference` /
`unpack_reference` in pack.py, whose wrappers `pack` / `unpack` validate every argument first.

Eight codes fill exactly k bytes (a *group*), so no code is ever split between two groups. The
unpack kernel works a *unit* of 8 groups (64 codes, 8k bytes) at a time, 4 groups per 256-bit
vector, and must run at memory speed, which a plain loop over codes does not reach (one load
and one byte store per code). Per half unit:

1. a byte shuffle puts group g's k bytes into 64-bit lane g (upper bytes zero):
       k=3:  bytes b0 b1 b2 b3 b4 b5 ...  ->  lane 0 = b0 b1 b2 0 0 0 0 0, lane 1 = b3 b4 b5 0 ...
2. `spread` moves the 8 k-bit fields of each lane into the 8 bytes of the lane in three halving
   steps (fields 0-3 | 4-7 -> 32-bit halves -> 16-bit quarters -> bytes), each a mask, a shift
   and an or on all fields at once;
3. one 32-byte store writes 32 codes.

The shuffle has a constant pattern, so it is written as LLVM IR (`shufflevector`, which LLVM
turns into `pshufb` on x86 and `tbl` on ARM) inside a Numba `@intrinsic`; see llvm_ir.py.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from . import llvm_ir as L
from .pack import UNIT

PARALLEL_MIN = 2**18  # codes below which the kernels run in the calling thread


def spread_masks(bits: int) -> list[tuple[int, int, int]]:
    """(low mask, high mask, shift) of each halving step: fields of width w in periods p."""
    steps = []
    for width, period in ((4 * bits, 64), (2 * bits, 32), (bits, 16)):
        low = sum(((1 << width) - 1) << (period * i) for i in range(64 // period))
        steps.append((low, (low << width) & (2**64 - 1), period // 2 - width))
    return steps


def _gather_plan(bits: int, half: int) -> tuple[list[int], list[int]]:
    """(load offsets, shuffle mask): lane s of the result holds group 4*half + s, zero-padded.

    The half unit's 4k bytes come from two 16-byte loads that stay inside the unit (k = 1: one
    8-byte load of the whole unit)."""
    unit_bytes, first, last = 8 * bits, 4 * half * bits, 4 * (half + 1) * bits
    offsets = [0] if bits == 1 else [min(first, unit_bytes - 16), max(last - 16, 0)]
    width = 8 if bits == 1 else 32  # lanes of the loaded source
    lanes = []
    for s in range(4):
        for t in range(8):
            byte = (4 * half + s) * bits + t
            if t >= bits:
                lanes.append(width)  # lane 0 of the zero vector
            elif byte < offsets[0] + 16:
                lanes.append(byte - offsets[0])
            else:
                lanes.append(16 + byte - offsets[1])
    return offsets, lanes


def _unpack_unit(bits: int):
    """Intrinsic (source address, destination address): 8k packed bytes -> 64 code bytes."""
    steps = spread_masks(bits)
    plans = [_gather_plan(bits, half) for half in (0, 1)]

    @intrinsic
    def unpack_unit(typingctx, src, dst):
        def codegen(context, builder, signature, args):
            src, dst = args
            for half, (offsets, lanes) in enumerate(plans):
                if len(offsets) == 1:
                    source = L.load(builder, src, L.V8I8)
                else:
                    source = L.concat(builder, L.load(builder, src, L.V16I8, offsets[0]),
                                      L.load(builder, src, L.V16I8, offsets[1]))
                shuffled = builder.shuffle_vector(source, L.zeros(source.type), L.mask(lanes))
                groups = builder.bitcast(shuffled, L.V4I64)  # (4,) one group per 64-bit lane
                for low, high, shift in steps:  # spread: k-bit fields -> bytes
                    moved = builder.shl(builder.and_(groups, L.const(L.V4I64, high)),
                                        L.const(L.V4I64, shift))
                    groups = builder.or_(builder.and_(groups, L.const(L.V4I64, low)), moved)
                L.store(builder, groups, dst, 32 * half)
            return context.get_dummy_value()

        return types.void(types.intp, types.intp), codegen

    return unpack_unit


@functools.cache
def unpack_kernels(bits: int):
    """(parallel, serial) compiled kernels for one k (a compile-time constant)."""
    unpack_unit = _unpack_unit(bits)

    @njit(inline="always")
    def unpack_units(packed, out):  # packed (8k U,) -> out (64 U,)
        src, dst = packed.ctypes.data, out.ctypes.data
        for unit in prange(out.size // UNIT):
            unpack_unit(src + unit * 8 * bits, dst + unit * UNIT)

    @njit(parallel=True, cache=True)
    def parallel(packed, out):
        unpack_units(packed, out)

    @njit(cache=True)
    def serial(packed, out):
        unpack_units(packed, out)

    return parallel, serial


def unpack_units(packed: np.ndarray, bits: int, out: np.ndarray) -> None:
    """packed (8k U,) uint8 -> out (64 U,) uint8; arguments checked by `kbit.unpack`. Small
    arrays run in the calling thread (starting the threads would cost more)."""
    if out.size:
        parallel, serial = unpack_kernels(bits)
        (parallel if out.size >= PARALLEL_MIN else serial)(packed, out)


@njit(parallel=True, cache=True)
def _pack_groups(codes, bits, out):
    for g in prange(codes.size // 8):  # codes (8G,) -> out (kG,)
        word = np.uint64(0)
        for s in range(8):
            word |= np.uint64(codes[8 * g + s]) << np.uint64(bits * s)
        for b in range(bits):
            out[g * bits + b] = np.uint8((word >> np.uint64(8 * b)) & np.uint64(255))


def pack_units(codes: np.ndarray, bits: int, out: np.ndarray) -> None:
    """codes (64 U,) uint8 -> out (8k U,) uint8; arguments checked by `kbit.pack`."""
    if codes.size:
        _pack_groups(codes, bits, out)
