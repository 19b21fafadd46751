"""Model configuration: the `ModelConfig` dataclass and the named presets.

Taught in chapter 2 (tokens and embeddings) and chapter 5 (the whole model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a minilm model. Every field is fixed once the model is built."""

    vocab_size: int = 256  # V: number of token ids; 256 = one token per byte
    d_model: int = 128  # C: width of the residual stream
    n_heads: int = 4  # H: attention heads per layer; d_model must be a multiple of it
    n_layers: int = 4  # number of Transformer blocks
    d_ff: int = 512  # F: hidden width of the feed-forward network (usually 4 * d_model)
    max_seq_len: int = 256  # longest context the learned position table covers
    layernorm_eps: float = 1e-5  # epsilon added to the variance inside every LayerNorm

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be a multiple of "
                f"n_heads ({self.n_heads})"
            )
        if not (isinstance(self.layernorm_eps, float) and 0 < self.layernorm_eps < 1):
            raise ValueError(
                f"ModelConfig.layernorm_eps must be a float in (0, 1), got {self.layernorm_eps!r}"
            )

    @property
    def head_dim(self) -> int:
        """D: width of one attention head (d_model / n_heads)."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**fields)

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """A named configuration from `PRESETS` (see `minilm train --preset`)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(d_model=32, n_heads=2, n_layers=2, d_ff=128, max_seq_len=64),
    "small": ModelConfig(d_model=128, n_heads=4, n_layers=4, d_ff=512, max_seq_len=256),
}
