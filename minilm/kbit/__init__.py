"""k-bit weights: data types, packing, blockwise quantization, fused k-bit matmul, quantized
models (chapters 7-10).

    codes  = kbit.pack(codes, bits) / kbit.unpack(packed, bits, n)   chapter 8 (pack.py)
    table  = kbit.codebook("nf", 4)                                  chapter 7 (codebooks.py)
    qt     = kbit.quantize(w, bits=4, dtype="nf", block_size=64)     chapter 7 (quantize.py)
    y      = kbit.matmul(x, qt, backend="cpu")  # x @ W.T            chapter 9 (matmul.py)
    qmodel = kbit.quantize_model(model, bits=4); kbit.total_bits(qmodel)   chapter 10

Importing this package loads NumPy only; the Numba kernels (pack_kernels.py, matmul_kernels.py,
simd.py) are imported and compiled on first use.
"""

from .codebooks import BITS, DTYPES, FP_EXPONENT_BITS, codebook
from .matmul import BACKENDS, MATMUL_VERSIONS, matmul, matmul_reference
from .model import qt_from_arrays, qt_to_arrays, quantize_model, total_bits
from .pack import pack, pack_reference, packed_size, unpack, unpack_reference
from .quantize import QuantizedTensor, error_stats, quantize

__all__ = [
    "BACKENDS", "BITS", "DTYPES", "FP_EXPONENT_BITS", "MATMUL_VERSIONS", "QuantizedTensor",
    "codebook", "error_stats", "matmul", "matmul_reference", "pack", "pack_reference",
    "packed_size", "qt_from_arrays", "qt_to_arrays", "quantize", "quantize_model", "total_bits",
    "unpack", "unpack_reference",
]
