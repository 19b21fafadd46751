"""The byte tokenizer: text <-> UTF-8 bytes, one token per byte (vocabulary 256).

Taught in chapter 2 (tokens and embeddings).
"""

from __future__ import annotations

import codecs

import numpy as np


class ByteTokenizer:
    """Encode text as its UTF-8 bytes; every byte value 0..255 is a token id.

    Any text can be encoded (no unknown tokens) and a model can emit a byte sequence that is not
    valid UTF-8 (half of a multi-byte character): `decode` then shows U+FFFD for the broken part.
    """

    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        """str -> int64 array (T,) of byte values."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, tokens) -> str:
        """int array (T,) of values in [0, 256) -> str (invalid UTF-8 becomes U+FFFD)."""
        return self.to_bytes(tokens).decode("utf-8", errors="replace")

    def to_bytes(self, tokens) -> bytes:
        array = np.asarray(tokens)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise TypeError(
                f"tokens must be a 1-D integer array, got {array.dtype} with shape {array.shape}"
            )
        if array.size and (array.min() < 0 or array.max() >= self.vocab_size):
            raise ValueError(f"tokens must lie in [0, {self.vocab_size}), got "
                             f"[{array.min()}, {array.max()}]")
        return array.astype(np.uint8).tobytes()

    def stream_decoder(self):
        """An incremental decoder: feed it bytes as they come, it returns whole characters."""
        return codecs.getincrementaldecoder("utf-8")(errors="replace")
