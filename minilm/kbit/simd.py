"""The fast k-bit GEMV: table lookups inside vector registers (chapter 9, version v3).

Why: a GEMV reads every weight once, so decoding must cost well under a cycle per weight. A
scalar `codebook[code]` load per weight (v1, v2) cannot do that, and LLVM does not vectorise it
(AVX2 gathers are slow). x86's `pshufb` looks up 32 bytes in a 16-entry byte table in one
instruction, and `pmaddwd` multiplies 16 pairs of int16 and adds neighbours into int32. So:

* the codebook becomes int16 levels round(16384 * codebook), split into a low-byte and a
  high-byte table: two `pshufb` decode 32 codes into 32 int16 weights;
* x is quantized per chunk of 64 values to int16 (absmax / 16383 as its scale), once per call
  (inside the same compiled call: a NumPy version cost more than a small GEMV);
* a chunk's 64 products are summed exactly in int32 (|sum| < 8 * 2**14 * 2**14 = 2**31), then
  converted to float32 and multiplied by (weight block scale) * (x chunk scale).

The int16 rounding of codebook and x changes the result by about 3e-5 of sum |x| |w| (not
exactly the float32 reference; the tests bound it). Kernels: k = 4 (nibbles: a mask and a
shift), k = 3 (a byte shuffle gives each 32-bit lane the bytes of two codes with the same bit
offset, one variable shift and a mask cut them out), k = 8 for the "int" data type (code - 127
is already an integer). The vector code is LLVM IR inside Numba `@intrinsic`s (llvm_ir.py) with
x86 instructions, so it runs on x86-64 with AVX2 only (`available()`); elsewhere `kbit.matmul`
uses version v2.

Cost per chunk of 64 codes, as compiled: 4-bit about 23 vector instructions, 3-bit about 33 (a
byte shuffle, a shift, two masks per 16 codes). Both kernels are limited by instructions, not
memory, on a 2-core machine, so 3-bit takes ~1.4x as long as 4-bit although it reads fewer bytes.
Tried and measured slower or no faster: a float path (`vpermps` on an 8-entry float table),
shifting by multiplies (`pmulhuw`) to offload the shift ports, and software prefetching.
"""

from __future__ import annotations

import functools
import platform

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import llvm_ir as L

CHUNK = 64  # values per x scale and per int32 sum
W_ONE = 16384  # codebook level 1.0 as int16
X_MAX = 16383  # largest |x| as int16 (keeps 8 products of a lane below 2**31)
PARALLEL_MIN = 2**20  # smaller weights run in the calling thread: starting threads costs more


@functools.cache
def available() -> bool:
    """True on an x86-64 CPU with AVX2 (the instructions these kernels use)."""
    import llvmlite.binding as llvm

    machine = platform.machine().lower() in ("x86_64", "amd64")
    return machine and llvm.get_host_cpu_features().get("avx2", False)


def supports(qt) -> bool:
    """Whether `gemv` handles this QuantizedTensor (else `kbit.matmul` uses version v2)."""
    n_cols = qt.shape[-1]
    return (available() and qt.ndim == 2 and n_cols % CHUNK == 0
            and (qt.block_size is None or qt.block_size % CHUNK == 0)
            and (qt.bits in (3, 4) or (qt.bits == 8 and qt.dtype == "int")))


# ---- x86 instructions and one chunk of 64 codes -> <8 x i32> sums of int16 w * int16 x --

def _x86(builder, name, ret, *args):
    fnty = ir.FunctionType(ret, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def _pshufb(builder, table, index):
    """32 byte lookups: out[i] = table[index[i] & 15] within each 128-bit half (0 if bit 7)."""
    return _x86(builder, "llvm.x86.avx2.pshuf.b", L.V32I8, table, index)


def _madd(builder, a, b):
    """16 int16 products, neighbours added: (8,) int32."""
    return _x86(builder, "llvm.x86.avx2.pmadd.wd", L.V8I32, a, b)


def _interleave(half):
    """Shuffle mask of (v)punpck{l,h}bw: bytes half..half+7 of each 128-bit lane of a and b."""
    return [j for lane in (0, 16) for i in range(half, half + 8)
            for j in (lane + i, 32 + lane + i)]


def _chunk_4bit(builder, w, x, table):
    packed = L.load(builder, w, L.V32I8)  # byte j = code 2j | code 2j+1 << 4
    low, high = L.load(builder, table, L.V32I8), L.load(builder, table, L.V32I8, 32)
    nibble = L.const(L.V32I8, 15)
    total = None
    for k, codes in enumerate((builder.and_(packed, nibble),
                               builder.and_(builder.lshr(packed, L.const(L.V32I8, 4)), nibble))):
        low_bytes, high_bytes = _pshufb(builder, low, codes), _pshufb(builder, high, codes)
        for part, half in enumerate((0, 8)):
            mixed = builder.shuffle_vector(low_bytes, high_bytes,
                                           L.mask(_interleave(half)))
            weights = builder.bitcast(mixed, L.V16I16)  # 16 int16 levels
            term = _madd(builder, weights, L.load(builder, x, L.V16I16, 32 * (2 * k + part)))
            total = term if total is None else builder.add(total, term)
    return total


def _x_order_4bit():
    return [2 * j + k for k in (0, 1) for half in (0, 8)
            for j in [*range(half, half + 8), *range(16 + half, 24 + half)]]


_OFFSETS_3BIT = [3 * s % 8 for s in range(8)]  # bit offset of code s of a group in its byte


def _passes_3bit() -> list[tuple[bool, list[int], list[int], list[int]]]:
    """4 passes of 16 codes: (single-byte?, pshufb mask, shift per 32-bit lane, code order).

    A 32-bit lane holds code s of two neighbouring groups (one per 16-bit half) so one shift
    serves both. Codes inside one byte (s not 2 or 5) get that byte twice, [b, b]: after the
    shift both bytes hold the code, and `& 0x0707 | 0x0800` makes the lookup index (c, c + 8)
    at once. Codes s = 2, 5 straddle two bytes [b, b+1]: one pass of its own, index built with
    a multiply by 0x0101."""
    single = [(s, pair) for s in range(8) if _OFFSETS_3BIT[s] <= 5 for pair in (0, 1)]
    double = [(s, pair) for s in (2, 5) for pair in (0, 1)]
    passes = []
    for lanes in (single[0:4], single[4:8], single[8:12], double):
        is_single = lanes is not double
        mask, shifts, order = [], [], []
        for h in (0, 1):  # half h: chunk bytes 12h.. ; its register lane starts at byte 8h
            for s, pair in lanes:
                shifts.append(_OFFSETS_3BIT[s])
                for g in (2 * pair, 2 * pair + 1):
                    byte = 3 * g + 4 * h + 3 * s // 8
                    mask += [byte, byte if is_single else byte + 1]
                    order.append(32 * h + 8 * g + s)
        passes.append((is_single, mask, shifts, order))
    return passes


_PASSES_3BIT = _passes_3bit()


def _chunk_3bit(builder, w, x, table):
    packed = L.concat(builder, L.load(builder, w, L.V16I8), L.load(builder, w, L.V16I8, 8))
    levels = L.load(builder, table, L.V32I8)  # entries 0-7 low bytes, 8-15 high bytes
    total = None
    for p, (is_single, mask, shifts, _) in enumerate(_PASSES_3BIT):
        pairs = builder.bitcast(_pshufb(builder, packed, L.const(L.V32I8, mask)), L.V8I32)
        shifted = builder.bitcast(builder.lshr(pairs, L.const(L.V8I32, shifts)), L.V16I16)
        if is_single:  # both bytes already hold the code
            codes = builder.and_(shifted, L.const(L.V16I16, 0x0707))
        else:
            codes = builder.mul(builder.and_(shifted, L.const(L.V16I16, 7)),
                                L.const(L.V16I16, 0x0101))
        index = builder.or_(codes, L.const(L.V16I16, 0x0800))  # bytes (c, c + 8)
        weights = builder.bitcast(_pshufb(builder, levels, builder.bitcast(index, L.V32I8)),
                                  L.V16I16)  # (16,) int16 levels
        term = _madd(builder, weights, L.load(builder, x, L.V16I16, 32 * p))
        total = term if total is None else builder.add(total, term)
    return total


def _x_order_3bit():
    return [i for *_, order in _PASSES_3BIT for i in order]


def _chunk_8bit_int(builder, w, x, table):
    total = None
    for q in range(4):
        codes = L.load(builder, w, L.V16I8, 16 * q)
        top = L.const(L.V16I8, 254)
        codes = builder.select(builder.icmp_unsigned("<", codes, top), codes, top)
        weights = builder.sext(builder.sub(codes, L.const(L.V16I8, 127)), L.V16I16)  # int c - 127
        term = _madd(builder, weights, L.load(builder, x, L.V16I16, 32 * q))
        total = term if total is None else builder.add(total, term)
    return total


def _row_dot(chunk, chunk_bytes):
    """An intrinsic: one output value = sum over chunks c of (scale of c's weight block) *
    (x scale of c) * (int32 sums of chunk c), accumulated in one float32 vector of 8 lanes (a
    register: one multiply-add per chunk, no per-block partial sum to keep)."""

    @intrinsic
    def row_dot(typingctx, w, x, w_scales, x_scales, table, n_blocks, chunks_per_block):
        def codegen(context, builder, signature, args):
            w, x, w_scales, x_scales, table, n_blocks, chunks_per_block = args
            acc = cgutils.alloca_once_value(builder, L.const(L.V8F32, 0.0))
            # one flat loop over the chunks (a nested block loop makes LLVM keep acc in memory)
            with cgutils.for_range(builder, builder.mul(n_blocks, chunks_per_block)) as loop:
                c = loop.index
                block = builder.zext(builder.udiv(builder.trunc(c, L.I32),
                                                  builder.trunc(chunks_per_block, L.I32)), L.I64)
                sums = chunk(builder, L.at(builder, w, c, chunk_bytes),
                             L.at(builder, x, c, 2 * CHUNK), table)  # <8 x i32>
                scale = builder.fmul(L.load(builder, L.at(builder, x_scales, c, 4), L.F32),
                                     L.load(builder, L.at(builder, w_scales, block, 4), L.F32))
                builder.store(L.fma(builder, builder.sitofp(sums, L.V8F32),
                                    L.broadcast(builder, scale, L.V8F32), builder.load(acc)), acc)
            return L.horizontal_sum(builder, builder.load(acc))

        return types.float32(*[types.intp] * 7), codegen

    return row_dot


_row_dot_4bit = _row_dot(_chunk_4bit, 32)
_row_dot_3bit = _row_dot(_chunk_3bit, 24)
_row_dot_8bit = _row_dot(_chunk_8bit_int, 64)


@njit(inline="always")
def _quantize_x(x, order, unit, x16, x_scales):
    """x (K,) -> x16 (K,) int16 in kernel order, scale per chunk * unit; False if not finite."""
    for c in range(x_scales.size):
        chunk = x[c * CHUNK:(c + 1) * CHUNK]
        absmax = np.float32(0.0)
        for v in chunk:
            if not np.isfinite(v):
                return False
            absmax = max(absmax, abs(v))
        inverse = X_MAX / absmax if absmax > 0 else np.float32(0.0)
        for j in range(CHUNK):
            x16[c * CHUNK + j] = np.int16(np.rint(chunk[order[j]] * inverse))
        x_scales[c] = absmax / X_MAX * unit
    return True


@njit(inline="always")
def _gemv(bits, packed, w_scales, scale_stride, x, order, unit, table, n_blocks, out):
    """out (N,) = rows of packed W (N, K) . x (K,); False (out unfinished) if x is not finite."""
    x16, x_scales = np.empty(x.size, np.int16), np.empty(x.size // CHUNK, np.float32)
    if not _quantize_x(x, order, unit, x16, x_scales):
        return False
    chunks_per_block = x.size // CHUNK // n_blocks
    row_bytes = x.size // 8 * bits
    w0, s0 = packed.ctypes.data, w_scales.ctypes.data
    x0, xs0, t0 = x16.ctypes.data, x_scales.ctypes.data, table.ctypes.data
    for n in prange(out.size):  # out (N,)
        w, s = w0 + n * row_bytes, s0 + 4 * n * scale_stride
        if bits == 4:
            out[n] = _row_dot_4bit(w, x0, s, xs0, t0, n_blocks, chunks_per_block)
        elif bits == 3:
            out[n] = _row_dot_3bit(w, x0, s, xs0, t0, n_blocks, chunks_per_block)
        else:
            out[n] = _row_dot_8bit(w, x0, s, xs0, t0, n_blocks, chunks_per_block)
    return True


@njit(parallel=True, cache=True)
def _gemv_parallel(bits, packed, w_scales, scale_stride, x, order, unit, table, n_blocks, out):
    return _gemv(bits, packed, w_scales, scale_stride, x, order, unit, table, n_blocks, out)


@njit(cache=True)
def _gemv_serial(bits, packed, w_scales, scale_stride, x, order, unit, table, n_blocks, out):
    return _gemv(bits, packed, w_scales, scale_stride, x, order, unit, table, n_blocks, out)


@functools.cache
def _tables(dtype: str, bits: int) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """(byte tables, order of x within a chunk, 1 / weight unit) for one codebook."""
    from .codebooks import codebook

    if bits == 8:  # "int": code c is the integer min(c, 254) - 127 in units of 1/127
        return np.zeros(32, np.uint8), np.arange(CHUNK), np.float32(1 / 127)
    levels = np.rint(codebook(dtype, bits) * W_ONE).astype(np.int16).view(np.uint16)
    low, high = (levels & 255).astype(np.uint8), (levels >> 8).astype(np.uint8)
    if bits == 4:  # [low table, low table][high table, high table]: one per 128-bit lane
        return (np.concatenate([low, low, high, high]), np.array(_x_order_4bit()),
                np.float32(1 / W_ONE))
    lane = np.concatenate([low, high])  # entry c: low byte of level c, entry c + 8: high byte
    return np.concatenate([lane, lane]), np.array(_x_order_3bit()), np.float32(1 / W_ONE)


def gemv(x: np.ndarray, qt, out: np.ndarray) -> bool:
    """out (N,) float32 = x (K,) float32 @ dequantize(qt).T, for `supports(qt)`. Returns False
    (out unfinished) if x has NaN or Inf: the float kernels then propagate them as the
    reference does. Arguments are checked by `kbit.matmul`."""
    table, order, unit = _tables(qt.dtype, qt.bits)
    n_blocks = 1 if qt.block_size is None else qt.shape[1] // qt.block_size  # per row
    stride = 0 if qt.block_size is None else n_blocks  # one scale for all rows, or per row
    run = _gemv_parallel if qt.size >= PARALLEL_MIN else _gemv_serial
    return run(qt.bits, qt.packed, qt.scales, stride, x, order, unit, table, n_blocks, out)
