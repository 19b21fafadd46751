"""Packing k-bit codes into bytes, and back (chapter 8).

The layout is fixed by DESIGN.md: a little-endian bit stream. Code i occupies stream bits
[i*k, (i+1)*k), least significant bit first, and stream bit b is bit b % 8 of byte b // 8. So
for k = 4 byte j is code[2j] | code[2j+1] << 4, and for k = 3 eight codes fill three bytes:

    codes  c0=5 (101)  c1=3 (011)  c2=6 (110) ...     stream bits (LSB first): 101 110 011 ...
    byte 0 = c0 | c1 << 3 | (c2 & 3) << 6             unused high bits of the last byte are 0

Eight codes always fill exactly k bytes, so a *group* of 8 codes never shares a byte with the
next one: the kernels read a group as one integer (`read_group`) and cut its codes out
(`group_code`), bit math written once here in plain Python and compiled by Numba where used.
`pack_reference` / `unpack_reference` are the spec; `pack` / `unpack` run the Numba kernels of
`pack_kernels.py` on whole units of 64 codes (8k bytes) and the reference on the rest.
"""

from __future__ import annotations

import numpy as np

from .codebooks import PACK_BITS, check_bits

BACKENDS = ("reference", "cpu", "cuda")
UNIT = 64  # codes per iteration of the Numba kernels (8 groups, 8k bytes)


def packed_size(n: int, bits: int) -> int:
    """Bytes that n codes of `bits` bits occupy: ceil(n * bits / 8)."""
    return (n * bits + 7) // 8


def check_codes(codes, bits) -> tuple[np.ndarray, int]:
    """(codes, bits) after checking: a 1-D uint8 array with every value below 2**bits."""
    bits = check_bits(bits, PACK_BITS)
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"codes must be a numpy.ndarray, got {type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise TypeError(f"codes must have dtype uint8, got {codes.dtype} "
                        f"(convert with codes.astype(np.uint8) after checking the range)")
    if codes.ndim != 1:
        raise ValueError(f"codes must be 1-D, got shape {codes.shape} (use codes.ravel())")
    if codes.size and codes.max() >= 2**bits:
        raise ValueError(f"codes must lie in [0, {2**bits}) for bits={bits}, "
                         f"got a code {codes.max()}")
    return np.ascontiguousarray(codes), bits


def check_packed(packed, bits, n) -> tuple[np.ndarray, int, int]:
    """(packed, bits, n) after checking: 1-D uint8 holding exactly ceil(n * bits / 8) bytes."""
    bits = check_bits(bits, PACK_BITS)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int (the number of codes), got {n!r}")
    if not isinstance(packed, np.ndarray):
        raise TypeError(f"packed must be a numpy.ndarray, got {type(packed).__name__}")
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise TypeError(f"packed must be a 1-D uint8 array, got {packed.dtype} {packed.shape}")
    if packed.size != packed_size(int(n), bits):
        raise ValueError(f"packed must hold ceil(n*bits/8) = {packed_size(int(n), bits)} bytes "
                         f"for n={n}, bits={bits}, got {packed.size}")
    return np.ascontiguousarray(packed), bits, int(n)


def read_group(packed, start, bits):
    """The k bytes packed[start:start+k] of one group of 8 codes as one integer, byte b at bit
    8b (the stream's little-endian order)."""
    word = np.uint64(0)
    for b in range(bits):
        word |= np.uint64(packed[start + b]) << np.uint64(8 * b)
    return word


def group_code(word, s, bits):
    """Code s (0..7) of a group read by `read_group`: stream bits [s*k, (s+1)*k) of the word."""
    return (word >> np.uint64(bits * s)) & np.uint64((1 << bits) - 1)


def code_at(packed, i, bits):
    """Code i read straight from the stream (the naive way): it spans at most two bytes."""
    bit = i * bits
    byte, offset = bit >> 3, bit & 7
    word = np.uint32(packed[byte])
    if offset + bits > 8:
        word |= np.uint32(packed[byte + 1]) << np.uint32(8)
    return (word >> np.uint32(offset)) & np.uint32((1 << bits) - 1)


def pack_reference(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes (n,) uint8 -> (ceil(n*bits/8),) uint8: every code's low `bits` bits, LSB first."""
    codes, bits = check_codes(codes, bits)
    stream = np.unpackbits(codes[:, None], axis=1, bitorder="little")[:, :bits]  # (n, k)
    return np.packbits(stream.ravel(), bitorder="little")  # zero-pads the last byte


def unpack_reference(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of `pack_reference`: (ceil(n*bits/8),) uint8 -> codes (n,) uint8."""
    packed, bits, n = check_packed(packed, bits, n)
    stream = np.unpackbits(packed, bitorder="little")[: n * bits].reshape(n, bits)  # (n, k)
    return np.packbits(stream, axis=1, bitorder="little").ravel()  # (n,)


def _check_backend(backend) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def pack(codes: np.ndarray, bits: int, backend: str = "cpu") -> np.ndarray:
    """Pack uint8 codes in [0, 2**bits) (any length n) into ceil(n*bits/8) bytes (see above)."""
    backend = _check_backend(backend)
    codes, bits = check_codes(codes, bits)
    out = np.empty(packed_size(codes.size, bits), np.uint8)
    if backend == "cuda":
        from .cuda_pack import pack_cuda

        return pack_cuda(codes, bits, out)
    whole = 0 if backend == "reference" else codes.size - codes.size % UNIT
    if whole:
        from .pack_kernels import pack_units

        pack_units(codes[:whole], bits, out[: whole // 8 * bits])
    out[whole // 8 * bits:] = pack_reference(codes[whole:], bits)
    return out


def unpack(packed: np.ndarray, bits: int, n: int, backend: str = "cpu",
           out: np.ndarray | None = None) -> np.ndarray:
    """Unpack n codes of `bits` bits from the bytes `pack` made -> uint8 array (n,).

    `out`: an optional C-contiguous uint8 array (n,) to write into (it saves the page faults of
    a fresh array, which for large n cost as much as the unpacking itself).
    """
    backend = _check_backend(backend)
    packed, bits, n = check_packed(packed, bits, n)
    if out is None:
        out = np.empty(n, np.uint8)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (n,)
              and out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous uint8 array of shape ({n},), got "
                         f"{getattr(out, 'dtype', type(out).__name__)} "
                         f"{getattr(out, 'shape', '')}")
    if backend == "cuda":
        from .cuda_pack import unpack_cuda

        return unpack_cuda(packed, bits, n, out)
    whole = 0 if backend == "reference" else n - n % UNIT
    if whole:
        from .pack_kernels import unpack_units

        unpack_units(packed[: whole // 8 * bits], bits, out[:whole])
    out[whole:] = unpack_reference(packed[whole // 8 * bits:], bits, n - whole)
    return out
