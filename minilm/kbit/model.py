"""Quantized models: `quantize_model`, `total_bits`, and the arrays a checkpoint stores for a
k-bit weight (chapter 10, the k-bit inference scaling laws).

`quantize_model` replaces every linear weight (attention `w_qkv`, `w_out`, FFN `w1`, `w2`) by a
`QuantizedTensor` of its transpose W^T (N, K), the layout of `kbit.matmul(x, qt)` = x @ W^T, so
the model's forward, `generate` and `evaluate` run the fused k-bit matmul unchanged.

Embeddings: by default the token table (which is also the tied LM head) and the position table
stay float32. They are lookups rather than matmuls (except the head), and the head sets the
precision of every logit, so quantizing it costs the most quality per bit saved: GPTQ,
LLM.int8() and bitsandbytes keep them in 16 bits. `embeddings=True` quantizes both with the same
data type, so that every large tensor is counted at k bits; the scaling-law sweep uses that.
LayerNorm parameters and biases (a few thousand numbers) always stay float32.
"""

from __future__ import annotations

import json

import numpy as np

from .quantize import QuantizedTensor, check_block_size, quantize

LINEAR_WEIGHTS = ("attn.w_qkv", "attn.w_out", "ffn.w1", "ffn.w2")  # stored (in, out): x @ w
EMBEDDINGS = ("tok_emb", "pos_emb")  # stored (rows, C): already the (N, K) layout
SEPARATOR = "::"  # checkpoint keys of a k-bit weight: "<name>::packed", "::scales", "::meta"


def quantize_model(model, bits: int = 4, dtype: str = "nf", block_size: int | None = 64,
                   embeddings: bool = False):
    """A new MiniLM whose linear weights (and with `embeddings=True` also tok_emb and pos_emb)
    are k-bit `QuantizedTensor`s; `model` itself is unchanged."""
    from ..model import MiniLM

    if not isinstance(model, MiniLM):
        raise TypeError(f"model must be a minilm.MiniLM, got {type(model).__name__}")
    block_size = check_block_size(block_size)
    config = model.config
    if block_size is not None:
        for width, what in ((config.d_model, "d_model"), (config.d_ff, "d_ff")):
            if width % block_size:
                raise ValueError(f"block_size={block_size} must divide {what}={width} (the "
                                 f"in-features of a quantized matmul); choose a smaller block")
    params = {}
    for name, value in model.params.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(f"model is already quantized ({name} is {type(value).__name__})")
        if name.endswith(LINEAR_WEIGHTS):
            value = quantize(np.ascontiguousarray(value.T), bits, dtype, block_size)  # (N, K)
        elif embeddings and name in EMBEDDINGS:
            value = quantize(value, bits, dtype, block_size)
        params[name] = value
    meta = {**model.meta, "quantized": {"bits": bits, "dtype": dtype, "block_size": block_size,
                                        "embeddings": embeddings}}
    return MiniLM(config, params, meta)


def total_bits(model) -> int:
    """Bits to store every parameter: k per code plus 32 per block scale for k-bit tensors, and
    the width of the array's dtype (32 for float32) for the rest. The tied LM head counts once."""
    params = getattr(model, "params", None)
    if not isinstance(params, dict):
        raise TypeError(f"model must be a minilm.MiniLM, got {type(model).__name__}")
    bits = 0
    for value in params.values():
        if isinstance(value, QuantizedTensor):
            bits += value.bits * value.size + 32 * value.n_blocks
        else:
            bits += 8 * value.nbytes
    return bits


def qt_to_arrays(name: str, qt: QuantizedTensor) -> dict[str, np.ndarray]:
    """The arrays a checkpoint stores for one k-bit weight: packed codes, scales, and a JSON
    record of shape, bits, dtype and block size (no pickle needed to read them back)."""
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"{name} must be a QuantizedTensor, got {type(qt).__name__}")
    meta = {"shape": list(qt.shape), "bits": qt.bits, "dtype": qt.dtype,
            "block_size": qt.block_size}
    return {f"{name}{SEPARATOR}packed": qt.packed, f"{name}{SEPARATOR}scales": qt.scales,
            f"{name}{SEPARATOR}meta": np.array(json.dumps(meta))}


def qt_from_arrays(arrays: dict[str, np.ndarray]) -> dict[str, QuantizedTensor]:
    """Inverse of `qt_to_arrays` for any number of weights: {"<name>::part": array} ->
    {name: QuantizedTensor}; a missing or inconsistent part raises ValueError."""
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        name, _, part = key.partition(SEPARATOR)
        parts.setdefault(name, {})[part] = array
    tensors = {}
    for name, found in parts.items():
        if sorted(found) != ["meta", "packed", "scales"]:
            raise ValueError(f"k-bit weight {name!r} needs the parts packed, scales and meta; "
                             f"the file has {sorted(found)}")
        meta = json.loads(str(found["meta"]))
        try:
            tensors[name] = QuantizedTensor(found["packed"], found["scales"],
                                            tuple(meta["shape"]), meta["bits"], meta["dtype"],
                                            meta["block_size"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"k-bit weight {name!r} in the file is inconsistent: "
                             f"{error}") from None
    return tensors
