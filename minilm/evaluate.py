"""Scoring text with the model: per-byte surprisal and bits per byte.

Taught in chapter 6 (training: the held-out loss) and chapter 12 (scoring and classifying text
by likelihood). Bits per byte = mean over predicted bytes of -log2 p(byte | bytes before it);
a model that knew nothing would score 8, a perfect one 0.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from .backend import check_backend
from .tokenizer import ByteTokenizer


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64 (used by evaluation and the training loss)."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def as_tokens(text) -> np.ndarray:
    """str (UTF-8 encoded) or bytes -> int64 byte tokens (n,)."""
    if isinstance(text, str):
        return ByteTokenizer().encode(text)
    if isinstance(text, (bytes, bytearray)):
        return np.frombuffer(bytes(text), dtype=np.uint8).astype(np.int64)
    raise TypeError(f"text must be str or bytes, got {type(text).__name__}")


def surprisal(model, text, backend: str = "cpu", batch_size: int = 8,
              stride: int | None = None) -> np.ndarray:
    """-log2 p(byte_i | bytes before it) for every byte after the first: float64 (n - 1,).

    The model sees at most `max_seq_len` bytes, so a longer text is scored in sliding windows
    of `max_seq_len + 1` bytes that start `stride` bytes apart (default: half a window). The
    first window predicts all its bytes; each later one predicts only its bytes that no window
    before it did, so every byte except the first is predicted exactly once, and (past the
    first window) with at least `max_seq_len - stride` bytes of context. stride=max_seq_len
    gives disjoint windows: cheaper, but the first bytes of each window are predicted from
    almost nothing. Windows run as batches of `batch_size`.
    """
    check_backend(backend)
    seq_len = model.config.max_seq_len
    stride = (seq_len // 2 or 1) if stride is None else stride
    for name, value in (("batch_size", batch_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if stride > seq_len:
        raise ValueError(f"stride must be at most the model's max_seq_len = {seq_len} (or no "
                         f"byte would be predicted between windows), got {stride}")
    tokens = as_tokens(text)
    if tokens.size < 2:
        raise ValueError(f"text must hold at least 2 bytes to predict one, got {tokens.size}")
    last = max(0, tokens.size - seq_len - 1)  # the start of the window that ends the text
    starts = [*range(0, last, stride), last]
    first_new = [0] + [before + seq_len - start for before, start in pairwise(starts)]
    bits = []
    for i in range(0, len(starts), batch_size):
        batch = np.stack([tokens[s:s + seq_len + 1] for s in starts[i:i + batch_size]])  # (b, W)
        window_bits = _window_bits(model, batch, backend)  # (b, W - 1)
        bits += [row[new:] for row, new in zip(window_bits, first_new[i:i + batch_size],
                                               strict=True)]
    return np.concatenate(bits)


def _window_bits(model, batch: np.ndarray, backend: str) -> np.ndarray:
    """(b, T) tokens -> (b, T - 1) surprisal of tokens 1..T-1 in bits."""
    log_probs = log_softmax(model.forward(batch[:, :-1], backend=backend))  # (b, T-1, V)
    picked = np.take_along_axis(log_probs, batch[:, 1:, None], axis=-1)[..., 0]  # (b, T-1)
    return -picked / np.log(2.0)


def evaluate(model, text, backend: str = "cpu", batch_size: int = 8,
             stride: int | None = None) -> float:
    """Bits per byte of the model on `text` (str or bytes), scored in sliding windows `stride`
    bytes apart (see `surprisal`); lower is better."""
    return float(surprisal(model, text, backend, batch_size, stride).mean())
