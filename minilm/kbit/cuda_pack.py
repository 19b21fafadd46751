"""`kbit.pack` / `kbit.unpack` on the GPU (chapter 11: GPUs with numba.cuda; the bit layout is
chapter 8's, see pack.py).

Eight codes fill exactly k bytes (a *group*), so groups are independent: one thread per group.
Thread g reads bytes [g*k, (g+1)*k) as one integer with `read_group` and cuts out its 8 codes
with `group_code` (the bit math of pack.py, compiled here for the GPU), or, to pack, ors 8
codes into one integer and writes its k bytes. Neighbouring threads touch neighbouring bytes.
Codes past the last whole group (n % 8 of them) are done on the host by the reference.
`kbit.pack(..., backend="cuda")` and `kbit.unpack(..., backend="cuda")` check the arguments
and call these.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, uint8, uint64

from ..kernels.cuda.device import THREADS, blocks, to_device
from .pack import group_code, pack_reference, read_group, unpack_reference

read_group_cuda = cuda.jit(device=True)(read_group)
group_code_cuda = cuda.jit(device=True)(group_code)


@cuda.jit
def _unpack_groups(packed, bits, out):
    g = cuda.grid(1)  # packed (kG,) -> out (8G,)
    if g < out.shape[0] // 8:
        word = read_group_cuda(packed, g * bits, bits)
        for s in range(8):
            out[8 * g + s] = uint8(group_code_cuda(word, s, bits))


@cuda.jit
def _pack_groups(codes, bits, out):
    g = cuda.grid(1)  # codes (8G,) -> out (kG,)
    if g < codes.shape[0] // 8:
        word = uint64(0)
        for s in range(8):
            word |= uint64(codes[8 * g + s]) << uint64(bits * s)
        for b in range(bits):
            out[g * bits + b] = uint8((word >> uint64(8 * b)) & uint64(255))


def pack_cuda(codes: np.ndarray, bits: int, out: np.ndarray) -> np.ndarray:
    """codes (n,) uint8 -> out (ceil(n*k/8),) uint8; arguments checked by `kbit.pack`."""
    whole = codes.size - codes.size % 8  # codes in whole groups
    if whole:
        codes_d = to_device(codes[:whole])
        packed = cuda.device_array(whole // 8 * bits, np.uint8)
        _pack_groups[blocks(whole // 8, THREADS), THREADS](codes_d, bits, packed)
        out[: whole // 8 * bits] = packed.copy_to_host()
    out[whole // 8 * bits:] = pack_reference(codes[whole:], bits)
    return out


def unpack_cuda(packed: np.ndarray, bits: int, n: int, out: np.ndarray) -> np.ndarray:
    """packed bytes -> out (n,) uint8 codes; arguments checked by `kbit.unpack`."""
    whole = n - n % 8
    if whole:
        packed_d = to_device(packed[: whole // 8 * bits])
        codes = cuda.device_array(whole, np.uint8)
        _unpack_groups[blocks(whole // 8, THREADS), THREADS](packed_d, bits, codes)
        out[:whole] = codes.copy_to_host()
    out[whole:] = unpack_reference(packed[whole // 8 * bits:], bits, n - whole)
    return out
