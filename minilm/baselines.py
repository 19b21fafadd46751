"""Honest baselines: the bits/byte of count-based byte models on the same texts as the LMs.

Taught in chapter 6 (training: is the Transformer learning more than byte statistics?).
  * unigram: p(byte) = (count + 1) / (n + 256), ignoring all context;
  * n-gram (default 4: three bytes of context) with interpolated *modified Kneser-Ney*
    smoothing (Chen & Goodman, 1998), the strongest classic n-gram smoothing:

        p(w | h) = (c(h w) - D(c(h w))) / c(h)  +  gamma(h) * p(w | h')        h' = h minus its
        gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / c(h)                       first byte

    where N_r(h) counts the bytes seen exactly r (r >= 3: at least 3) times after h, and the
    discounts D1, D2, D3 of each order come from its counts of counts. The lower orders use
    *continuation* counts (in how many different contexts a string was seen), the order-0
    distribution is uniform over 256 bytes, and a context never seen defers to the lower order.
Every byte after the first of the held-out text is predicted (as `minilm.evaluate` does).
"""

from __future__ import annotations

import numpy as np

from .evaluate import as_tokens


def unigram_bpb(train_text, heldout_text) -> float:
    """Bits per byte of an add-one smoothed byte unigram model trained on `train_text`."""
    train, heldout = _bytes("train_text", train_text), _bytes("heldout_text", heldout_text)
    probs = (np.bincount(train, minlength=256) + 1) / (train.size + 256)  # (256,)
    return float(-np.log2(probs[heldout[1:]]).mean())


def _bytes(name: str, text) -> np.ndarray:
    data = as_tokens(text)
    if data.size < 2:
        raise ValueError(f"{name} must hold at least 2 bytes, got {data.size}")
    return data


def _gram_keys(data: np.ndarray, order: int) -> np.ndarray:
    """Key of the `order`-gram ending at each position i >= order - 1: its bytes in base 256,
    the last (predicted) byte lowest. (n - order + 1,) int64."""
    keys = np.zeros(data.size - order + 1, np.int64)
    for j in range(order):
        keys = keys * 256 + data[j:data.size - order + 1 + j]
    return keys


def _discounts(counts: np.ndarray) -> np.ndarray:
    """D1, D2, D3+ from the counts of counts n1..n4 (Chen & Goodman's estimates)."""
    n1, n2, n3, n4 = (max(int((counts == r).sum()), 1) for r in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    d = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    return np.clip(d, 0.0, np.array([1.0, 2.0, 3.0]))


class _Order:
    """The table of one order: sorted gram keys with their (raw or continuation) counts, and per
    context the total count and the interpolation weight gamma."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray):
        self.keys, self.counts = keys, counts.astype(np.float64)
        self.d = _discounts(counts)
        contexts = keys // 256
        self.contexts, first = np.unique(contexts, return_index=True)
        self.totals = np.add.reduceat(self.counts, first)
        mass = self.d[np.minimum(counts, 3) - 1]  # D(c) of every gram
        self.gammas = np.add.reduceat(mass, first) / self.totals

    def interpolate(self, grams: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """p(w | h) for gram keys (h w), given p(w | h') of the next lower order."""
        found, row = _lookup(self.contexts, grams // 256)
        _, at = _lookup(self.keys, grams)
        count = np.where(at >= 0, self.counts[np.maximum(at, 0)], 0.0)
        discount = np.where(count > 0, self.d[np.clip(count, 1, 3).astype(int) - 1], 0.0)
        row = np.maximum(row, 0)
        mixed = (count - discount) / self.totals[row] + self.gammas[row] * lower
        return np.where(found, mixed, lower)  # an unseen context defers to the lower order


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray):
    """(found mask, index or -1) of each query in a sorted key array."""
    at = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    found = sorted_keys[at] == queries
    return found, np.where(found, at, -1)


def ngram_bpb(train_text, heldout_text, order: int = 4) -> float:
    """Bits per byte of an interpolated modified Kneser-Ney byte `order`-gram model."""
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 7:
        raise ValueError(f"order must be an int in [1, 7] (keys are int64), got {order!r}")
    train, heldout = _bytes("train_text", train_text), _bytes("heldout_text", heldout_text)
    if train.size < order:
        raise ValueError(f"train_text must hold at least order={order} bytes, got {train.size}")
    tables = []
    higher = None
    for n in range(order, 0, -1):  # highest order first: the lower ones count its grams
        if higher is None:
            keys, counts = np.unique(_gram_keys(train, n), return_counts=True)
        else:  # continuation count of g: distinct bytes seen before it
            keys, counts = np.unique(higher % 256 ** n, return_counts=True)
        tables.append(_Order(keys, counts))
        higher = keys
    tables.reverse()  # tables[n - 1] is order n
    probs = np.full(heldout.size - 1, 1 / 256)  # order 0: uniform over the bytes
    for n, table in enumerate(tables, start=1):
        grams = _gram_keys(heldout, n)[max(0, 2 - n):]  # one per predicted position i >= n - 1
        tail = probs[-grams.size:]  # positions with at least n - 1 bytes of context
        probs[-grams.size:] = table.interpolate(grams, tail)
    return float(-np.log2(probs).mean())


def baselines(train_text, heldout_text, order: int = 4) -> dict[str, float]:
    """{"unigram": bits/byte, "4-gram": bits/byte} (the key names the order)."""
    return {"unigram": unigram_bpb(train_text, heldout_text),
            f"{order}-gram": ngram_bpb(train_text, heldout_text, order)}
