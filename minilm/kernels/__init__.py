"""Kernels: one module per concept, each with its NumPy reference and its fast versions.

`minilm.kernels.reference`, `minilm.kernels.cpu` and `minilm.kernels.cuda` expose the same
functions (softmax, layernorm, gelu, attention, ffn). They are imported on first use, so that
`import minilm` loads neither Numba nor CUDA.
"""

import importlib

BACKEND_MODULES = ("reference", "cpu", "cuda")


def __getattr__(name):
    if name in BACKEND_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
