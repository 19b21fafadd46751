"""Scoring text with the model: per-byte surprisal and bits per byte.

Taught in chapter 6 (training: the held-out loss) and chapter 12 (scoring and classifying text
by likelihood). Bits per byte = mean over predicted bytes of -log2 p(byte | bytes before it);
a model that knew nothing would score 8, a perfect one 0.
"""

from __future__ import annotations

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


def surprisal(model, text, backend: str = "cpu", batch_size: int = 8) -> np.ndarray:
    """-log2 p(byte_i | bytes before it) for every byte after the first: float64 (n - 1,).

    The text is cut into windows of `max_seq_len + 1` bytes that overlap by one byte, so every
    byte except the first is predicted exactly once, from the bytes before it in its window.
    Windows of full length run as batches of `batch_size`.
    """
    check_backend(backend)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    tokens = as_tokens(text)
    if tokens.size < 2:
        raise ValueError(f"text must hold at least 2 bytes to predict one, got {tokens.size}")
    window = model.config.max_seq_len + 1  # predicts max_seq_len bytes
    starts = range(0, tokens.size - 1, window - 1)
    windows = [tokens[s:s + window] for s in starts]
    bits = []
    full = [w for w in windows if w.size == window]
    for i in range(0, len(full), batch_size):
        batch = np.stack(full[i:i + batch_size])  # (b, window)
        bits.append(_window_bits(model, batch, backend).reshape(-1))
    for w in windows[len(full):]:  # the last, shorter window
        bits.append(_window_bits(model, w[None, :], backend).reshape(-1))
    return np.concatenate(bits)


def _window_bits(model, batch: np.ndarray, backend: str) -> np.ndarray:
    """(b, T) tokens -> (b, T - 1) surprisal of tokens 1..T-1 in bits."""
    log_probs = log_softmax(model.forward(batch[:, :-1], backend=backend))  # (b, T-1, V)
    picked = np.take_along_axis(log_probs, batch[:, 1:, None], axis=-1)[..., 0]  # (b, T-1)
    return -picked / np.log(2.0)


def evaluate(model, text, backend: str = "cpu", batch_size: int = 8) -> float:
    """Bits per byte of the model on `text` (str or bytes); lower is better."""
    return float(surprisal(model, text, backend, batch_size).mean())
