"""The feed-forward network on the GPU (chapter 11: GPUs with numba.cuda; the maths is
chapter 4's `ffn_reference`):

    ffn(x) = gelu(x @ w1 + b1) @ w2 + b2,   x (..., C), w1 (C, F), b1 (F,), w2 (F, C), b2 (C,)

Two matrix products of matmul.py; the first applies bias and GELU before storing the hidden
activations (M, F), which stay on the device between the two. `FFN_VERSIONS` runs both products
with matmul v1 (naive) or v2 (shared-memory tiles); `ffn` is v2.
"""

from __future__ import annotations

import numpy as np

from ..ffn import _check
from .device import to_device
from .matmul import GELU, NONE, matmul_device
from .weights import on_device


def ffn_device(x, w1, b1, w2, b2, version="v2"):
    """Device entry point: x (M, C) and the weights, device float32 -> new device (M, C)."""
    hidden = matmul_device(x, w1, b1, GELU, version)  # (M, F)
    return matmul_device(hidden, w2, b2, NONE, version)  # (M, C)


def _version(version: str):
    def ffn(x, w1, b1, w2, b2):
        raw = (w1, b1, w2, b2)
        x, *weights = _check(x, w1, b1, w2, b2, (np.float32,))
        rows = x.reshape(-1, x.shape[-1])  # (M, C)
        device = [on_device(r, w) for r, w in zip(raw, weights, strict=True)]
        return ffn_device(to_device(rows), *device, version).copy_to_host().reshape(x.shape)

    ffn.__name__ = ffn.__qualname__ = f"ffn_{version}"
    ffn.__doc__ = f"`ffn_reference` on the GPU with matmul {version}: NumPy in, NumPy out."
    return ffn


FFN_VERSIONS = {"v1": _version("v1"), "v2": _version("v2")}
ffn = FFN_VERSIONS["v2"]
