"""The Numba CPU kernels (float32): same names and signatures as `minilm.kernels.reference`.

Compiled on first call and cached on disk (`cache=True`), parallel over rows with `prange`.
"""

from .attention import attention_cpu as attention
from .ffn import ffn_cpu as ffn
from .gelu import gelu_cpu as gelu
from .layernorm import layernorm_cpu as layernorm
from .linear import linear_cpu as linear
from .softmax import softmax_cpu as softmax

__all__ = ["attention", "ffn", "gelu", "layernorm", "linear", "softmax"]
