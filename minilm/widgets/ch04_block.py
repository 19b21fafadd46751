"""Chapter 4 (the Transformer block): GELU, LayerNorm, the FFN and the residual stream, seen
inside a trained model layer by layer; the Numba kernels of the block measured against NumPy.
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

PROMPT = "The quick brown fox jumps over the lazy dog. Python is a programming language."


def gelu_figure():
    """GELU (tanh approximation, the library's reference) beside ReLU."""
    from ..kernels.reference import gelu

    x = np.linspace(-4, 4, 401)
    fig = figure(5, 3.2)
    ax = fig.subplots()
    ax.plot(x, gelu(x), label="GELU")
    ax.plot(x, np.maximum(x, 0), "--", label="ReLU")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel="x", ylabel="activation", title="GELU: a smooth ReLU, slightly negative")
    ax.legend()
    return fig


@functools.lru_cache(maxsize=32)
def block_activations(model_name: str, prompt: str) -> dict:
    """What the blocks of a shipped model compute on `prompt`, from one traced forward pass:

    tokens (T,); stream: [(label, x (T, C))] the residual stream after the embeddings and after
    each attention and FFN; normed: the LayerNorm output of each of those (T, C); hidden: per
    layer the GELU activations of the FFN (T, F).
    """
    from ..kernels.reference import gelu, linear

    model = load_model(model_name)
    tokens = ByteTokenizer().encode(prompt or " ")[:model.config.max_seq_len]
    tr = trace(model, tokens)
    hidden = [gelu(linear(*call.args[:3]))[0] for call in tr.of("ffn")]  # h @ w1 + b1: (T, F)
    return {"tokens": tokens, "stream": tr.residual_stream(),
            "normed": [call.out[0] for call in tr.of("layernorm")], "hidden": hidden}


def rms(x: np.ndarray) -> np.ndarray:
    """Root mean square over the last axis."""
    return np.sqrt((x.astype(np.float64) ** 2).mean(axis=-1))


def block_figure(acts: dict, point: int):
    """Three views of the residual stream at `point` (0 = embeddings, then + attention, + FFN
    of each block): its heat map, its size along the stream, and its LayerNorm before/after."""
    labels = [label for label, _ in acts["stream"]]
    streams = [x for _, x in acts["stream"]]
    x, normed = streams[point], acts["normed"][point]
    fig = figure(13, 4.2, layout=None)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.24, top=0.92, wspace=0.3)
    ax_map, ax_rms, ax_hist = fig.subplots(1, 3, width_ratios=[1.2, 1, 1])
    limit = float(np.abs(x).max())
    ax_map.imshow(x, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                  interpolation="nearest")
    ticks = range(0, len(x), max(1, len(x) // 12))
    ax_map.set_yticks(list(ticks), [byte_label(int(acts["tokens"][i])) for i in ticks])
    ax_map.set(title=f"residual stream after {labels[point]}", xlabel="channel c",
               ylabel="position")
    steps = np.arange(len(streams))
    ax_rms.plot(steps, [rms(s).mean() for s in streams], "o-", color="k", label="stream x")
    changes = [rms(b - a).mean() for a, b in zip(streams[:-1], streams[1:], strict=True)]
    colors = ["C0" if "attention" in label else "C1" for label in labels[1:]]
    ax_rms.bar(steps[1:], changes, color=colors, alpha=0.6, label="what the sub-layer added")
    ax_rms.axvline(point, color="grey", ls="--", lw=0.8)
    ax_rms.set_xticks(steps, labels, rotation=60, fontsize=8)
    ax_rms.set(ylabel="RMS over channels (mean over positions)",
               title="blue: attention, orange: FFN")
    ax_rms.legend(fontsize=8)
    ax_hist.hist(x.ravel(), bins=60, alpha=0.6, density=True, label="x (input)")
    ax_hist.hist(normed.ravel(), bins=60, alpha=0.6, density=True, label="LayerNorm(x)")
    ax_hist.set(title="the LayerNorm that reads this point", xlabel="value")
    ax_hist.legend(fontsize=8)
    return fig


def ffn_figure(acts: dict):
    """Per layer: the share of FFN hidden units that are clearly on (GELU output > 0.1) at each
    position -- the FFN is a large, sparse-ish bank of detectors."""
    active = np.array([(h > 0.1).mean(axis=-1) for h in acts["hidden"]])  # (layers, T)
    fig = figure(10, 1.2 + 0.5 * len(active))
    ax = fig.subplots()
    image = ax.imshow(active, aspect="auto", cmap="magma", vmin=0, vmax=max(active.max(), 1e-6),
                      interpolation="nearest")
    t = active.shape[1]
    ax.set_xticks(range(t), [byte_label(int(tok)) for tok in acts["tokens"]],
                  fontsize=6 if t > 40 else 8)
    ax.set(yticks=range(len(active)), ylabel="layer",
           title="share of FFN units with GELU output > 0.1")
    fig.colorbar(image, ax=ax)
    return fig


def block_panel(model_name: str = DEFAULT_MODEL, prompt: str = PROMPT):
    """Widgets: your prompt and a point along the residual stream -> `block_figure`."""
    n_points = 2 * load_model(model_name).config.n_layers + 1

    def render(prompt, point):
        return block_figure(block_activations(model_name, prompt), point)

    return panel(render, {"prompt": text_box("prompt", prompt),
                          "point": int_slider("point on the stream", 0, n_points - 1, 1)})


def kernel_timings(t: int = 256, c: int = 256, f: int = 1024, repeats: int = 5) -> list:
    """LayerNorm, GELU and FFN on a (T, C) activation: the Numba CPU kernel against the NumPy
    reference, checked first, then timed (`bench.compare`; one `Result` per row)."""
    from ..kernels import cpu, reference

    rng = np.random.default_rng(0)
    x = rng.standard_normal((t, c), dtype=np.float32)
    gamma, beta = (rng.standard_normal(c, dtype=np.float32) for _ in range(2))
    h = rng.standard_normal((t, f), dtype=np.float32)
    w1 = rng.standard_normal((c, f), dtype=np.float32) * np.float32(c ** -0.5)
    w2 = rng.standard_normal((f, c), dtype=np.float32) * np.float32(f ** -0.5)
    b1, b2 = np.zeros(f, np.float32), np.zeros(c, np.float32)
    cases = [(f"layernorm T={t} C={c}", "layernorm", (x, gamma, beta), 8.0 * t * c),
             (f"gelu T={t} F={f}", "gelu", (h,), 10.0 * t * f),
             (f"ffn T={t} C={c} F={f}", "ffn", (x, w1, b1, w2, b2), 4.0 * t * c * f)]
    results = []
    for case, name, args, flops in cases:
        fast, ref = getattr(cpu, name), getattr(reference, name)
        results += compare(case, {"numba cpu": lambda fast=fast, args=args: fast(*args)},
                           lambda ref=ref, args=args: ref(*args), flops / 1e9, "GFLOP/s",
                           repeats, atol=1e-4, rtol=1e-4)
    return results
