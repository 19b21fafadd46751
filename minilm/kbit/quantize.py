"""Blockwise absmax quantization: `quantize`, `QuantizedTensor`, `error_stats` (chapter 7).

The tensor is flattened (row-major) and cut into blocks of `block_size` consecutive values (the
last block may be shorter). Each block is divided by its absolute maximum (its *scale*, kept as
float32), which maps it into [-1, 1]; each value is then stored as the code of the nearest
codebook entry (ties go to the lower entry), and the codes are packed k bits each:

    w (N, K) -> blocks (n_blocks, B) -> scaled in [-1, 1] -> codes (N*K,) -> packed bytes
    dequantize:  w_hat = codebook[code] * scale of its block

Small blocks follow the local range of the weights (an outlier only spoils its own block) but
cost 32 bits of scale per block: 4-bit weights in blocks of 64 cost 4 + 32/64 = 4.5 bits each.
`block_size=None` keeps one scale for the whole tensor. A block whose values are all 0 gets the
scale 0 and dequantizes to exact zeros (no division by zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..kernels.checks import FLOAT_DTYPES, float_array
from .codebooks import check_bits, check_dtype, codebook, nearest_codes
from .pack import pack, packed_size, unpack

BLOCK_SIZES = range(16, 4097)  # allowed block sizes: multiples of 8 in this range
CHUNK = 2**20  # values quantized at a time (bounds the temporary memory of big tensors)


def check_block_size(block_size) -> int | None:
    """None (one scale per tensor) or a multiple of 8 in [16, 4096], so every block starts on a
    byte of the packed stream (8 codes are exactly k bytes)."""
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be an int or None, got {type(block_size).__name__}")
    if block_size not in BLOCK_SIZES or block_size % 8:
        raise ValueError(f"block_size must be None or a multiple of 8 in [16, 4096], "
                         f"got {block_size}")
    return int(block_size)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A k-bit tensor: packed codes, one float32 absmax scale per block, and how to read them."""

    packed: np.ndarray  # uint8 (ceil(size*bits/8),): the codes, laid out as `kbit.pack` does
    scales: np.ndarray  # float32 (n_blocks,): absolute maximum of each block
    shape: tuple  # shape of the original tensor
    bits: int  # k: bits per code
    dtype: str  # codebook data type: "int", "fp" or "nf"
    block_size: int | None  # values per scale; None: one scale for the whole tensor

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape) if isinstance(self.shape, tuple) else None
        if not shape or min(shape) < 1:
            raise ValueError(f"shape must be a non-empty tuple of positive ints, got {self.shape}")
        object.__setattr__(self, "shape", shape)
        check_bits(self.bits)
        check_dtype(self.dtype)
        check_block_size(self.block_size)
        for name, array, dtype, size in (
            ("packed", self.packed, np.uint8, packed_size(self.size, self.bits)),
            ("scales", self.scales, np.float32, self.n_blocks),
        ):
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
                raise TypeError(f"QuantizedTensor.{name} must be a 1-D {np.dtype(dtype).name} "
                                f"array, got {getattr(array, 'dtype', type(array).__name__)}")
            if array.size != size:
                raise ValueError(f"QuantizedTensor.{name} must have {size} entries for shape "
                                 f"{shape}, bits={self.bits}, block_size={self.block_size}, "
                                 f"got {array.size}")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def block(self) -> int:
        """Values per scale (the whole tensor when block_size is None)."""
        return self.block_size or self.size

    @property
    def n_blocks(self) -> int:
        return -(-self.size // self.block)

    @property
    def codebook(self) -> np.ndarray:
        return codebook(self.dtype, self.bits)

    @property
    def bits_per_param(self) -> float:
        """Bits per value including the float32 scales: k + 32 * n_blocks / size."""
        return self.bits + 32 * self.n_blocks / self.size

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.scales.nbytes

    def codes(self) -> np.ndarray:
        """The unpacked codes (size,) uint8, row-major."""
        return unpack(self.packed, self.bits, self.size)

    def dequantize(self) -> np.ndarray:
        """float32 array of `shape`: codebook[code] * scale of the code's block."""
        values = self.codebook[self.codes()]  # (size,)
        return (values * np.repeat(self.scales, self.block)[: self.size]).reshape(self.shape)

    def dequantize_rows(self, rows) -> np.ndarray:
        """Rows of a 2-D tensor, decoded alone: rows int array (...) -> (..., K) float32.

        This is the embedding lookup of a k-bit table: only the rows asked for are unpacked.
        """
        if self.ndim != 2:
            raise ValueError(f"dequantize_rows needs a 2-D tensor, got shape {self.shape}")
        n, k = self.shape
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu":
            raise TypeError(f"rows must be integers, got {rows.dtype}")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"rows must lie in [0, {n}), got [{rows.min()}, {rows.max()}]")
        if (k * self.bits) % 8 or (self.block_size and k % self.block_size):
            return self.dequantize()[rows]  # rows do not start on a byte or a block: decode all
        row_bytes = k * self.bits // 8
        picked = self.packed[: n * row_bytes].reshape(n, row_bytes)[rows.ravel()]  # (R, bytes)
        values = self.codebook[unpack(picked.ravel(), self.bits, picked.shape[0] * k)]  # (R*K,)
        if self.block_size is None:
            return (values * self.scales[0]).reshape(*rows.shape, k)
        per_row = k // self.block_size
        scales = self.scales.reshape(n, per_row)[rows.ravel()]  # (R, K/B)
        blocks = values.reshape(-1, per_row, self.block_size) * scales[:, :, None]  # (R, K/B, B)
        return blocks.reshape(*rows.shape, k)

    def __getitem__(self, key) -> np.ndarray:
        """qt[rows] (int, slice or index array on the first axis) = dequantize()[rows]."""
        return self.dequantize_rows(np.arange(self.shape[0])[key])

    def __repr__(self) -> str:
        block = "per-tensor" if self.block_size is None else f"block_size={self.block_size}"
        return (f"QuantizedTensor(shape={self.shape}, bits={self.bits}, dtype={self.dtype!r}, "
                f"{block}, {self.bits_per_param:.3g} bits/param, {self.nbytes:,} bytes)")


def quantize(w: np.ndarray, bits: int = 4, dtype: str = "nf",
             block_size: int | None = 64) -> QuantizedTensor:
    """Blockwise absmax quantization of a float array to k-bit codes of data type `dtype`."""
    w = float_array("w", w, dtypes=FLOAT_DTYPES)
    bits, dtype = check_bits(bits), check_dtype(dtype)
    block_size = check_block_size(block_size)
    if not np.isfinite(w).all():
        raise ValueError("w contains NaN or Inf; only finite weights can be quantized")
    flat = w.ravel()  # (n,)
    block = block_size or flat.size
    table = codebook(dtype, bits)
    codes = np.empty(flat.size, np.uint8)
    scales = np.empty(-(-flat.size // block), np.float32)
    step = max(block, CHUNK // block * block)  # whole blocks per chunk
    for start in range(0, flat.size, step):
        chunk = flat[start:start + step].astype(np.float32)
        padded = np.zeros(-(-chunk.size // block) * block, np.float32)
        padded[: chunk.size] = chunk
        blocks = padded.reshape(-1, block)  # (blocks in chunk, B)
        absmax = np.abs(blocks).max(axis=1)  # (blocks in chunk,)
        scales[start // block: start // block + absmax.size] = absmax
        scaled = blocks / np.where(absmax > 0, absmax, 1)[:, None]  # in [-1, 1]
        codes[start:start + chunk.size] = nearest_codes(scaled.ravel()[: chunk.size], table)
    return QuantizedTensor(pack(codes, bits), scales, w.shape, bits, dtype, block_size)


def error_stats(w: np.ndarray, qt: QuantizedTensor) -> dict[str, float]:
    """How far dequantize(qt) is from w: {"mse", "max_abs_error", "sqnr_db"}.

    SQNR (signal-to-quantization-noise ratio) = 10 log10(sum w^2 / sum (w - w_hat)^2) dB; every
    extra bit of a good data type adds about 6 dB.
    """
    w = float_array("w", w, dtypes=FLOAT_DTYPES)
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"qt must be a QuantizedTensor, got {type(qt).__name__}")
    if w.shape != qt.shape:
        raise ValueError(f"w has shape {w.shape} but qt was quantized from shape {qt.shape}")
    error = w.astype(np.float64) - qt.dequantize()
    noise, signal = float(np.sum(error**2)), float(np.sum(w.astype(np.float64) ** 2))
    with np.errstate(divide="ignore"):
        sqnr = 10 * np.log10(signal / noise) if noise else float("inf")
    return {"mse": noise / w.size, "max_abs_error": float(np.abs(error).max()),
            "sqnr_db": float(sqnr)}

