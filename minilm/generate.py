"""Text generation: greedy, temperature and top-k sampling, streamed token by token.

Taught in chapter 5 (the whole model and generation). Decoding uses the model's KV cache: the
prompt is run once (prefill), then each new token costs one single-position forward.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .backend import check_backend
from .tokenizer import ByteTokenizer

EMPTY_PROMPT_TOKEN = ord("\n")  # an empty prompt starts the text after a newline


def sampling_probs(logits: np.ndarray, temperature: float, top_k: int | None) -> np.ndarray:
    """The distribution `sample_token` draws from, float64 (V,): softmax(logits / temperature)
    over the top_k largest logits (all when top_k is None); temperature 0 puts all mass on the
    argmax. Chapter 5's temperature and top-k widgets draw it."""
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return np.eye(logits.size)[np.argmax(logits)]
    if top_k is not None and top_k < logits.size:
        kth_largest = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < kth_largest, -np.inf, logits)
    probs = np.exp((logits - logits.max()) / temperature)
    return probs / probs.sum()


def sample_token(logits: np.ndarray, temperature: float, top_k: int | None,
                 rng: np.random.Generator) -> int:
    """Pick the next token from logits (V,): argmax if temperature == 0, else sample from
    `sampling_probs` (softmax of logits / temperature, restricted to the top_k largest)."""
    if temperature == 0:
        return int(np.argmax(logits))
    probs = sampling_probs(logits, temperature, top_k)
    return int(min(np.searchsorted(np.cumsum(probs), rng.random(), side="right"),
                   logits.size - 1))


def _check_args(model, prompt, max_new_tokens, temperature, top_k, seed, backend):
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), "
                         f"got {temperature!r}")
    vocab = model.config.vocab_size
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or not 1 <= top_k <= vocab):
        raise ValueError(f"top_k must be None or an int in [1, {vocab}], got {top_k!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    check_backend(backend)


def generate_tokens(model, prompt_tokens: np.ndarray, max_new_tokens: int, temperature=1.0,
                    top_k=None, seed=0, backend="cpu", use_cache=True) -> Iterator[int]:
    """Yield new token ids one at a time.

    The model sees at most `max_seq_len` tokens. Without the cache each step re-runs the
    forward over the last `max_seq_len` tokens. With the cache, when it is full it is refilled
    from the last `max_seq_len // 2` tokens (one prefill), then decoding goes on.
    """
    rng = np.random.default_rng(seed)
    limit = model.config.max_seq_len
    context = [int(t) for t in prompt_tokens] or [EMPTY_PROMPT_TOKEN]
    cache = None
    pending: list[int] = []  # tokens the cache has not seen yet
    for _ in range(max_new_tokens):
        if not use_cache:
            logits = model.forward(np.array(context[-limit:]), backend=backend)[-1]
        else:
            if cache is None or cache.length + len(pending) > limit:
                cache = model.new_cache()
                pending = context[-(limit // 2):] if len(context) > limit else context[-limit:]
            logits = model.forward(np.array(pending), backend=backend, cache=cache)[-1]
        token = sample_token(logits, temperature, top_k, rng)
        context.append(token)
        pending = [token]
        yield token


def generate_stream(model, prompt: str, max_new_tokens: int = 100, temperature: float = 1.0,
                    top_k: int | None = None, seed: int = 0, backend: str = "cpu",
                    use_cache: bool = True) -> Iterator[str]:
    """Like `generate`, but yields the text piece by piece as tokens are produced."""
    _check_args(model, prompt, max_new_tokens, temperature, top_k, seed, backend)
    tokenizer = ByteTokenizer()
    decoder = tokenizer.stream_decoder()
    for token in generate_tokens(model, tokenizer.encode(prompt), max_new_tokens, temperature,
                                 top_k, seed, backend, use_cache):
        piece = decoder.decode(bytes([token]))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def generate(model, prompt: str, max_new_tokens: int = 100, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, backend: str = "cpu",
             use_cache: bool = True) -> str:
    """Continue `prompt` by `max_new_tokens` bytes; returns the new text (prompt excluded).

    temperature=0 is greedy decoding; the same seed gives the same text. Bytes that do not form
    valid UTF-8 appear as U+FFFD.
    """
    return "".join(generate_stream(model, prompt, max_new_tokens, temperature, top_k, seed,
                                   backend, use_cache))
