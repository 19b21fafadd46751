"""The minilm model: a GPT-2-style decoder-only Transformer, with a KV cache for decoding.

Taught in chapter 5 (the whole model); its parts in chapters 2 (embeddings), 3 (attention) and
4 (the block). Every kernel call goes through `backend.py`, so the same code runs on the
"reference", "cpu" and "cuda" backends.

    x = tok_emb[tokens] + pos_emb[positions]                      (B, T, C)
    for each block:  x = x + attn(ln1(x));  x = x + ffn(ln2(x))   (pre-LayerNorm, residuals)
    logits = ln_f(x) @ tok_emb.T                                  (B, T, V), head tied to tok_emb
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .backend import check_backend, linear, ops, region
from .config import ModelConfig
from .params import CONFIG_KEY, check_params, init_params, load_params, param_shapes, save_params

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


class KVCache:
    """Keys and values of every layer for the positions seen so far.

    k, v: (n_layers, B, H, max_seq_len, D); `length` positions are filled. Decoding one token
    then costs O(length) attention work instead of re-running the whole prefix.
    """

    def __init__(self, config: ModelConfig, batch_size: int = 1):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        shape = (config.n_layers, batch_size, config.n_heads, config.max_seq_len,
                 config.head_dim)
        self.k = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def extend(self, layer: int, k_new: np.ndarray, v_new: np.ndarray):
        """Store (B, H, T, D) new keys/values after `length`; return all keys/values so far."""
        start, stop = self.length, self.length + k_new.shape[2]
        self.k[layer, :, :, start:stop] = k_new
        self.v[layer, :, :, start:stop] = v_new
        return self.k[layer, :, :, :stop], self.v[layer, :, :, :stop]  # (B, H, stop, D)


class MiniLM:
    """A decoder-only Transformer language model over bytes (see the module docstring)."""

    def __init__(self, config: ModelConfig, params: dict, meta: dict | None = None):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.params = check_params(config, params)
        self.meta = dict(meta or {})  # how the model was made (training record), if known

    @classmethod
    def init(cls, config: ModelConfig, seed: int = 0) -> MiniLM:
        """A model with random GPT-2-style weights; the same seed gives the same weights."""
        return cls(config, init_params(config, seed))

    def save(self, path) -> Path:
        """Write the model and its `meta` record to a .npz file (`minilm.load` reads it)."""
        return save_params(path, self.config, self.params, self.meta)

    @property
    def n_params(self) -> int:
        """Number of parameters (the tied LM head is counted once)."""
        return sum(int(np.prod(getattr(p, "shape", ()))) for p in self.params.values())

    def new_cache(self, batch_size: int = 1) -> KVCache:
        return KVCache(self.config, batch_size)

    def __repr__(self) -> str:
        c = self.config
        return (f"MiniLM(d_model={c.d_model}, n_heads={c.n_heads}, n_layers={c.n_layers}, "
                f"d_ff={c.d_ff}, max_seq_len={c.max_seq_len}, params={self.n_params:,})")

    def _check_tokens(self, tokens, cache: KVCache | None) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu" or tokens.ndim not in (1, 2):
            raise TypeError("tokens must be an integer array of shape (T,) or (B, T), "
                            f"got {tokens.dtype} with shape {tokens.shape}")
        if tokens.size == 0:
            raise ValueError(f"tokens must not be empty, got shape {tokens.shape}")
        vocab = self.config.vocab_size
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ValueError(f"tokens must lie in [0, {vocab}), got values in "
                             f"[{tokens.min()}, {tokens.max()}]")
        start = cache.length if cache is not None else 0
        if start + tokens.shape[-1] > self.config.max_seq_len:
            raise ValueError(
                f"sequence too long: {start} cached + {tokens.shape[-1]} new positions > "
                f"max_seq_len={self.config.max_seq_len}")
        if cache is not None and cache.batch_size != (1 if tokens.ndim == 1 else len(tokens)):
            raise ValueError(f"cache holds batch size {cache.batch_size}, tokens have shape "
                             f"{tokens.shape}")
        return tokens

    def forward(self, tokens, backend: str = "cpu", cache: KVCache | None = None, *,
                kernels=None) -> np.ndarray:
        """Logits for every position: tokens (T,) -> (T, V), (B, T) -> (B, T, V).

        With a `cache`, `tokens` are the next positions after those cached; their keys and
        values are appended, so decoding feeds one token at a time and gets the same logits as
        a full forward over the whole sequence. `kernels` replaces the backend's kernel
        namespace (`backend.ops(backend)`): the chapters pass one that records every call.
        """
        backend = check_backend(backend)
        kernels = ops(backend) if kernels is None else kernels
        tokens = self._check_tokens(tokens, cache)
        with region(backend, self):
            logits = self._forward(tokens.reshape(-1, tokens.shape[-1]), kernels, backend, cache)
        return logits.reshape(*tokens.shape, -1)

    def _forward(self, batched, kernels, backend, cache):
        start = cache.length if cache is not None else 0
        p = self.params
        x = self._embed(batched) + p["pos_emb"][start:start + batched.shape[1]]  # (B, T, C)
        for layer in range(self.config.n_layers):
            x = x + self._attention(layer, x, kernels, backend, cache)
            x = x + self._ffn(layer, x, kernels, backend)
        if cache is not None:
            cache.length += batched.shape[1]
        x = kernels.layernorm(x, p["ln_f.gamma"], p["ln_f.beta"], self.config.layernorm_eps)
        return self._head(x, backend)  # (B, T, V)

    def _embed(self, tokens: np.ndarray) -> np.ndarray:
        table = self.params["tok_emb"]
        if not isinstance(table, np.ndarray):  # a k-bit table: decode only the rows used
            return table.dequantize_rows(tokens)
        return table[tokens]  # (B, T, C)

    def _head(self, x: np.ndarray, backend: str) -> np.ndarray:
        table = self.params["tok_emb"]  # the tied head: logits = x @ tok_emb.T
        weight = table.T if isinstance(table, np.ndarray) else table  # (C, V); k-bit: (V, C)
        return linear(x, weight, np.zeros(self.config.vocab_size, np.float32), backend)

    def _attention(self, layer, x, kernels, backend, cache):
        p, c = self.params, self.config
        pre = f"blocks.{layer}."
        b, t, _ = x.shape
        h = kernels.layernorm(x, p[pre + "ln1.gamma"], p[pre + "ln1.beta"], c.layernorm_eps)
        qkv = linear(h, p[pre + "attn.w_qkv"], p[pre + "attn.b_qkv"], backend)  # (B, T, 3C)
        qkv = qkv.reshape(b, t, 3, c.n_heads, c.head_dim).transpose(2, 0, 3, 1, 4)  # (3,B,H,T,D)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if cache is not None:
            k, v = cache.extend(layer, k, v)  # (B, H, Tk, D), Tk = cached + T
        heads = kernels.attention(q, k, v, causal=True)  # (B, H, T, D)
        merged = heads.transpose(0, 2, 1, 3).reshape(b, t, c.d_model)  # (B, T, C)
        return linear(merged, p[pre + "attn.w_out"], p[pre + "attn.b_out"], backend)

    def _ffn(self, layer, x, kernels, backend):
        p, c = self.params, self.config
        pre = f"blocks.{layer}."
        h = kernels.layernorm(x, p[pre + "ln2.gamma"], p[pre + "ln2.beta"], c.layernorm_eps)
        w1, b1, w2, b2 = (p[pre + n] for n in ("ffn.w1", "ffn.b1", "ffn.w2", "ffn.b2"))
        if isinstance(w1, np.ndarray) and isinstance(w2, np.ndarray):
            return kernels.ffn(h, w1, b1, w2, b2)
        hidden = kernels.gelu(linear(h, w1, b1, backend))  # (B, T, F)
        return linear(hidden, w2, b2, backend)


def available_models() -> list[str]:
    """Names of the checkpoints shipped in the package, smallest first."""
    sizes = {}
    for path in CHECKPOINT_DIR.glob("*.npz"):
        with np.load(path, allow_pickle=False) as archive:  # reads the config entry only
            config = ModelConfig.from_dict(json.loads(str(archive[CONFIG_KEY])))
        sizes[path.stem] = sum(int(np.prod(shape)) for shape in param_shapes(config).values())
    return sorted(sizes, key=lambda name: (sizes[name], name))


def load(name_or_path) -> MiniLM:
    """Load a shipped checkpoint by name (see `available_models()`) or a saved .npz path."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = CHECKPOINT_DIR / f"{name_or_path}.npz"
        if not shipped.is_file():
            names = available_models()
            raise ValueError(f"no model named {str(name_or_path)!r} and no such file; shipped "
                             f"models: {', '.join(names) if names else 'none yet'}")
        path = shipped
    return MiniLM(*load_params(path))
