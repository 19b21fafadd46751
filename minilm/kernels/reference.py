"""The NumPy reference kernels: the spec every fast version is tested against.

`minilm.kernels.reference.X` has the same name and signature as `minilm.kernels.cpu.X` and
`minilm.kernels.cuda.X`. They accept float32 (and float64, for gradient checks).
"""

from .attention import attention_reference as attention
from .ffn import ffn_reference as ffn
from .gelu import gelu_reference as gelu
from .layernorm import layernorm_reference as layernorm
from .linear import linear_reference as linear
from .softmax import softmax_reference as softmax

__all__ = ["attention", "ffn", "gelu", "layernorm", "linear", "softmax"]
