"""Chapter 3 (attention): a trained model's attention maps on your prompt, why scores are scaled
by 1/sqrt(D), and how the Numba kernels v1/v2/v3 (`minilm/kernels/attention.py`) scale with T.
"""

from __future__ import annotations

import functools

import numpy as np

from ..bench import compare
from ..tokenizer import ByteTokenizer
from .common import (
    DEFAULT_MODEL,
    byte_label,
    figure,
    int_slider,
    load_model,
    panel,
    text_box,
    trace,
)

PROMPT = "def add(self, other):\n    return self.value + other.value"


@functools.lru_cache(maxsize=32)
def attention_maps(model_name: str, prompt: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(tokens (T,), per layer the weights (H, T, T)) of a shipped model on `prompt`.

    The model is causal, so the maps of the first t tokens are the top-left t x t corners of
    these: one forward over the whole prompt serves every sequence length.
    """
    model = load_model(model_name)
    tokens = ByteTokenizer().encode(prompt or " ")[:model.config.max_seq_len]
    return tokens, trace(model, tokens).attention_weights()


def attention_figure(weights: list[np.ndarray], tokens: np.ndarray, layer: int, head,
                     seq_len: int):
    """One head's map with byte labels (head an int), or every head of the layer (head="all"),
    over the first `seq_len` tokens. Row i: how much query position i reads each key j <= i."""
    t = min(seq_len, len(tokens))
    maps = weights[layer][:, :t, :t]  # (H, t, t)
    labels = [byte_label(int(tok)) for tok in tokens[:t]]
    heads = range(len(maps)) if head == "all" else [int(head)]
    cols = min(4, len(heads))  # "all": a grid of up to 4 maps per row
    rows = -(-len(heads) // cols)
    size = 3.6 if head == "all" else 7.0
    fig = figure(size * cols, size * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(heads):]:
        ax.set_visible(False)
    for ax, h in zip(axes, heads, strict=False):
        ax.imshow(maps[h], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"layer {layer}, head {h}")
        if head != "all" or t <= 16:
            font = 9 if t <= 24 else 6
            ax.set_xticks(range(t), labels, fontsize=font, rotation=90)
            ax.set_yticks(range(t), labels, fontsize=font)
        ax.set(xlabel="key (attended to)", ylabel="query (reading)")
    return fig


def attention_panel(model_name: str = DEFAULT_MODEL, prompt: str = PROMPT):
    """Widgets: your prompt, layer, head ("all" or one) and sequence length -> attention maps."""
    import ipywidgets as w

    config = load_model(model_name).config

    def render(prompt, layer, head, seq_len):
        tokens, weights = attention_maps(model_name, prompt)
        return attention_figure(weights, tokens, layer, head, seq_len)

    heads = w.Dropdown(options=["all", *range(config.n_heads)], value=0, description="head")
    return panel(render, {"prompt": text_box("prompt", prompt),
                          "layer": int_slider("layer", 0, config.n_layers - 1, 0),
                          "head": heads,
                          "seq_len": int_slider("sequence length T", 2, config.max_seq_len, 24)})


def scaling_figure(dims=(4, 16, 64, 256), n_keys: int = 64, seed: int = 0):
    """Why divide by sqrt(D): for random unit-variance q and k, the spread of q.k grows like
    sqrt(D) and the softmax turns one-hot; the scaled scores keep a spread of about 1."""
    from ..kernels.reference import softmax

    rng = np.random.default_rng(seed)
    fig = figure(10, 3.4)
    ax_spread, ax_peak = fig.subplots(1, 2)
    spreads, peaks = {"q.k": [], "q.k / sqrt(D)": []}, {"q.k": [], "q.k / sqrt(D)": []}
    for d in dims:
        q = rng.standard_normal((256, d))  # 256 queries
        k = rng.standard_normal((n_keys, d))
        for name, scores in (("q.k", q @ k.T), ("q.k / sqrt(D)", q @ k.T / np.sqrt(d))):
            spreads[name].append(scores.std())
            peaks[name].append(softmax(scores).max(axis=-1).mean())
    for name in spreads:
        ax_spread.plot(dims, spreads[name], "o-", label=name)
        ax_peak.plot(dims, peaks[name], "o-", label=name)
    ax_spread.set(xscale="log", yscale="log", xlabel="head dim D", ylabel="std of scores")
    ax_peak.set(xscale="log", xlabel="head dim D", ylabel="mean largest softmax weight",
                ylim=(0, 1.05), title=f"softmax over {n_keys} keys")
    ax_spread.legend()
    return fig


def attention_timings(seq_lens=(64, 128, 256, 512, 1024), heads: int = 4, dim: int = 32,
                      repeats: int = 3) -> dict[str, np.ndarray]:
    """Median seconds of causal attention (H=heads, D=dim) at each T: the NumPy reference and
    every numbered CPU version, each checked against the reference first (`bench.compare`).

    Returns {"T": (S,), "numpy reference": (S,), "v1": (S,), "v2": (S,), "v3": (S,)}.
    """
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {}
    for t in seq_lens:
        qkv = [rng.standard_normal((heads, t, dim), dtype=np.float32) for _ in range(3)]
        for result in _compare_versions(*qkv, repeats):
            times.setdefault(result.variant, []).append(result.seconds)
    return {"T": np.array(seq_lens), **{name: np.array(s) for name, s in times.items()}}


def _compare_versions(q, k, v, repeats):
    from ..kernels.attention import ATTENTION_VERSIONS, attention_reference

    heads, t, dim = q.shape
    variants = {name: (lambda f=f: f(q, k, v, causal=True))
                for name, f in ATTENTION_VERSIONS.items()}
    flops = 4.0 * heads * dim * t * (t + 1) / 2  # q.k and p.v over the causal half
    return compare(f"T={t}", variants, lambda: attention_reference(q, k, v), flops / 1e9,
                   "GFLOP/s", repeats=repeats)


def timings_figure(timings: dict[str, np.ndarray]):
    """Time against T (log-log) for every version, with a T^2 guide line; and the speed-up."""
    fig = figure(10, 3.6)
    ax_time, ax_ratio = fig.subplots(1, 2)
    t = timings["T"]
    base = timings["numpy reference"]
    for i, (name, seconds) in enumerate((n, s) for n, s in timings.items() if n != "T"):
        ax_time.loglog(t, seconds * 1e3, "o-", color=f"C{i}", label=name)
        if name != "numpy reference":
            ax_ratio.semilogx(t, base / seconds, "o-", color=f"C{i}", label=name)
    guide = base[-1] * 1e3 * (t / t[-1]) ** 2
    ax_time.loglog(t, guide, "k:", label="~ T^2")
    for ax in (ax_time, ax_ratio):
        ax.set_xticks(t, [str(v) for v in t])
        ax.minorticks_off()
    ax_time.set(xlabel="sequence length T", ylabel="median time (ms)")
    ax_ratio.axhline(1.0, color="grey", lw=0.8)
    ax_ratio.set(xlabel="sequence length T", ylabel="NumPy time / version time")
    ax_time.legend(fontsize=8)
    ax_ratio.legend(fontsize=8)
    return fig
