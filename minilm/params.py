"""Parameters: their names and shapes, random initialisation, and .npz save/load.

Taught in chapter 2 (embedding tables) and chapter 5 (the whole model). A checkpoint is one
`.npz` file holding every parameter as an array plus the `ModelConfig` (and an optional record
of how it was made) as JSON strings, so it loads without pickle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .config import ModelConfig

CONFIG_KEY = "__config__"
META_KEY = "__meta__"


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter name -> shape, in a fixed order. The LM head is tied to `tok_emb`."""
    c, f = config.d_model, config.d_ff
    shapes = {"tok_emb": (config.vocab_size, c), "pos_emb": (config.max_seq_len, c)}
    for i in range(config.n_layers):
        p = f"blocks.{i}."
        shapes.update({
            p + "ln1.gamma": (c,), p + "ln1.beta": (c,),
            p + "attn.w_qkv": (c, 3 * c), p + "attn.b_qkv": (3 * c,),
            p + "attn.w_out": (c, c), p + "attn.b_out": (c,),
            p + "ln2.gamma": (c,), p + "ln2.beta": (c,),
            p + "ffn.w1": (c, f), p + "ffn.b1": (f,),
            p + "ffn.w2": (f, c), p + "ffn.b2": (c,),
        })
    shapes.update({"ln_f.gamma": (c,), "ln_f.beta": (c,)})
    return shapes


def init_params(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2 initialisation: N(0, 0.02) weights, the two residual projections scaled by
    1/sqrt(2 n_layers), N(0, 0.01) positions, zero biases, LayerNorm gamma 1 and beta 0."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    rng = np.random.default_rng(seed)
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    params = {}
    for name, shape in param_shapes(config).items():
        if name.endswith(".gamma"):
            value = np.ones(shape)
        elif name.endswith((".beta", ".b_qkv", ".b_out", ".b1", ".b2")):
            value = np.zeros(shape)
        elif name.endswith((".w_out", ".w2")):
            value = rng.normal(0.0, residual_std, shape)
        elif name == "pos_emb":
            value = rng.normal(0.0, 0.01, shape)
        else:
            value = rng.normal(0.0, 0.02, shape)
        params[name] = value.astype(np.float32)
    return params


def check_params(config: ModelConfig, params: dict) -> dict:
    """Check that `params` has exactly the names and shapes of `config`; return a new dict.

    Float parameters must be finite float32 arrays. Other values (k-bit `QuantizedTensor`s) are
    accepted where they have a `.shape` equal to the float shape, transposed for linear weights.
    """
    expected = param_shapes(config)
    missing = [n for n in expected if n not in params]
    unexpected = [n for n in params if n not in expected]
    if missing or unexpected:
        raise ValueError(f"parameters do not match the config: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}")
    checked = {}
    for name, shape in expected.items():
        value = params[name]
        if isinstance(value, np.ndarray):
            if value.shape != shape:
                raise ValueError(f"parameter {name!r} must have shape {shape}, got {value.shape}")
            if value.dtype != np.float32:
                raise TypeError(f"parameter {name!r} must be float32, got {value.dtype}")
            if not np.isfinite(value).all():
                raise ValueError(f"parameter {name!r} contains NaN or Inf")
        else:
            stored = tuple(getattr(value, "shape", ()))
            if stored not in (shape, shape[::-1]):
                raise ValueError(f"parameter {name!r} ({type(value).__name__}) must have shape "
                                 f"{shape} or {shape[::-1]}, got {stored}")
        checked[name] = value
    return checked


def save_params(path, config: ModelConfig, params: dict, meta: dict | None = None) -> Path:
    """Write parameters, config and an optional record (`meta`, JSON-able) to one .npz file."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    arrays = {CONFIG_KEY: np.array(json.dumps(config.to_dict()))}
    if meta is not None:
        arrays[META_KEY] = np.array(json.dumps(meta))
    for name, value in params.items():
        if isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            from .kbit import qt_to_arrays

            arrays.update(qt_to_arrays(name, value))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def load_params(path) -> tuple[ModelConfig, dict, dict]:
    """Read a file written by `save_params` -> (config, params, meta); checks names and shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a minilm .npz checkpoint ({error})") from None
    with archive:
        if CONFIG_KEY not in archive.files:
            raise ValueError(f"{path} has no {CONFIG_KEY!r} entry: not a minilm checkpoint")
        config = ModelConfig.from_dict(json.loads(str(archive[CONFIG_KEY])))
        meta = json.loads(str(archive[META_KEY])) if META_KEY in archive.files else {}
        arrays = {n: archive[n] for n in archive.files if n not in (CONFIG_KEY, META_KEY)}
    params = {n: a for n, a in arrays.items() if "::" not in n}
    if len(params) != len(arrays):
        from .kbit import qt_from_arrays

        params.update(qt_from_arrays({n: a for n, a in arrays.items() if "::" in n}))
    return config, check_params(config, params), meta
