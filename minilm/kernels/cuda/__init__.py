"""The numba.cuda kernels (float32): same names and signatures as `minilm.kernels.reference`
and `minilm.kernels.cpu` (chapter 11: GPUs with numba.cuda).

Each public function takes and returns NumPy arrays (it checks its arguments exactly as the CPU
version does, copies them to the device, runs the kernel, copies the result back); the
`*_device` functions take and return device arrays, for code that keeps data on the GPU.
Inside `model.forward(..., backend="cuda")` the weights stay on the device (weights.py).

Runs on an NVIDIA GPU, or anywhere in Numba's CUDA simulator (`NUMBA_ENABLE_CUDASIM=1` set
before numba is imported); see device.py. Importing this package compiles nothing and needs no
GPU; the first call checks that a device is there and says how to get one if not.

    softmax_kernels.py  layernorm_kernels.py   one thread block per row
    gelu_kernels.py     one thread per element
    matmul.py           naive (v1) and shared-memory tiled (v2) matmul; the linear layer
    ffn_kernels.py      two fused matmuls (bias + GELU applied before storing)
    attention_kernels.py  v1 one thread per row; v2 shared-memory tiles, online softmax
    reduce.py   block-wide sum / max;  weights.py  device-resident model weights;
    device.py   GPU or simulator, launch sizes
(The modules are not named after the functions, which would hide them: `minilm.kernels.cuda.
attention` is the function.)
"""

from .attention_kernels import ATTENTION_VERSIONS, attention, attention_device
from .device import CudaUnavailableError, describe, require
from .ffn_kernels import FFN_VERSIONS, ffn, ffn_device
from .gelu_kernels import gelu, gelu_device
from .layernorm_kernels import layernorm, layernorm_device
from .matmul import linear, matmul_device
from .softmax_kernels import softmax, softmax_device

__all__ = [
    "ATTENTION_VERSIONS", "FFN_VERSIONS", "CudaUnavailableError",
    "attention", "attention_device", "describe", "ffn", "ffn_device", "gelu", "gelu_device",
    "layernorm", "layernorm_device", "linear", "matmul_device", "require", "softmax",
    "softmax_device",
]
