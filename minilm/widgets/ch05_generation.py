"""Chapter 5 (the whole model and generation): next-byte probabilities under temperature and
top-k, sampled text, the KV cache's speed-up, and text from every shipped model size.

Chapter 0 uses `next_byte_figure` for its first look at a trained model.
"""

from __future__ import annotations

import functools
import html

import numpy as np

from ..bench import median_time
from ..generate import generate, sampling_probs
from ..tokenizer import ByteTokenizer
from .common import (
    DEFAULT_MODEL,
    byte_label,
    figure,
    float_slider,
    int_slider,
    load_model,
    panel,
    text_box,
)

PROMPT = "The Python interpreter "
WIDGET_BACKEND = "reference"  # NumPy: no compile wait, and fast enough for models this small


def next_byte_logits(model, prompt: str, backend: str = WIDGET_BACKEND) -> np.ndarray:
    """The model's logits (V,) for the byte after `prompt` (the last max_seq_len bytes of it)."""
    tokens = ByteTokenizer().encode(prompt or "\n")[-model.config.max_seq_len:]
    return model.forward(tokens, backend=backend)[-1]


def next_byte_figure(model, prompt: str, temperature: float = 1.0, top_k: int | None = None,
                     shown: int = 20):
    """Bars: the `shown` most likely next bytes after temperature and top-k; outlines: the
    model's plain softmax (temperature 1, no top-k)."""
    logits = next_byte_logits(model, prompt)
    plain = sampling_probs(logits, 1.0, None)
    probs = sampling_probs(logits, temperature, top_k)
    order = np.argsort(-plain)[:shown]
    fig = figure(9, 3.2)
    ax = fig.subplots()
    ax.bar(range(shown), probs[order], color="C0", label="sampled from")
    ax.bar(range(shown), plain[order], fill=False, edgecolor="k", lw=0.8,
           label="softmax(logits)")
    ax.set_xticks(range(shown), [byte_label(int(b)) for b in order])
    entropy = -(probs[probs > 0] * np.log2(probs[probs > 0])).sum()
    ax.set(ylim=(0, 1), ylabel="probability",
           title=f"next byte after {prompt[-30:]!r}   (entropy {entropy:.2f} bits)")
    ax.legend()
    return fig


def generation_panel(model_name: str = DEFAULT_MODEL, prompt: str = PROMPT):
    """Widgets: prompt, temperature, top-k (0 = off) and seed -> the next-byte distribution and
    120 bytes sampled with those settings."""
    model = load_model(model_name)

    def render(prompt, temperature, top_k, seed):
        from IPython.display import HTML

        k = top_k or None
        text = generate(model, prompt, 120, temperature, k, seed, WIDGET_BACKEND)
        sample = (f"<pre style='white-space:pre-wrap'><b>{html.escape(prompt)}</b>"
                  f"{html.escape(text)}</pre>")
        return next_byte_figure(model, prompt, temperature, k), HTML(sample)

    return panel(render, {"prompt": text_box("prompt", prompt),
                          "temperature": float_slider("temperature", 0.0, 2.0, 0.8, 0.05),
                          "top_k": int_slider("top-k (0 = off)", 0, 64, 0),
                          "seed": int_slider("seed", 0, 9, 0)})


def kv_cache_timings(model, lengths=(16, 32, 64, 128), backend: str = WIDGET_BACKEND,
                     repeats: int = 1) -> dict[str, np.ndarray]:
    """Median seconds to generate n bytes (greedy, from an empty prompt) with and without the
    KV cache, for n in `lengths` (each <= max_seq_len). Both must give the same text."""
    with_cache, without = [], []
    for n in lengths:
        texts = {}

        def run(use_cache, n=n, texts=texts):
            texts[use_cache] = generate(model, "", n, 0.0, backend=backend, use_cache=use_cache)

        with_cache.append(median_time(lambda: run(True), repeats))
        without.append(median_time(lambda: run(False), repeats))
        if texts[True] != texts[False]:
            raise AssertionError(f"the KV cache changed the generated text at n={n}")
    return {"n": np.array(lengths), "cache": np.array(with_cache),
            "no cache": np.array(without)}


def kv_cache_figure(timings: dict[str, np.ndarray]):
    """Generation time against length, with and without the cache, and the speed-up."""
    fig = figure(10, 3.5)
    ax_time, ax_ratio = fig.subplots(1, 2)
    n = timings["n"]
    for name, style in (("no cache", "o-"), ("cache", "s-")):
        ax_time.plot(n, timings[name] * 1e3, style, label=name)
    ax_time.set(xlabel="bytes generated n", ylabel="median time (ms)",
                title="no cache: ~n^2 work; cache: ~n")
    ax_time.legend()
    ax_ratio.plot(n, timings["no cache"] / timings["cache"], "d-", color="C2")
    ax_ratio.set(xlabel="bytes generated n", ylabel="speed-up of the KV cache (x)", ylim=(0, None))
    return fig


@functools.lru_cache(maxsize=256)
def _family_text(name: str, prompt: str, n: int, temperature: float, seed: int) -> str:
    return generate(load_model(name), prompt, n, temperature, None, seed, WIDGET_BACKEND)


def family_samples(prompt: str = PROMPT, n: int = 120, temperature: float = 0.7,
                   seed: int = 0, names=None) -> list[dict]:
    """For every shipped model (smallest first): name, parameters, held-out bits per byte (from
    its training record) and `n` bytes it writes after `prompt` (cached per setting)."""
    import minilm

    rows = []
    for name in names or minilm.available_models():
        model = load_model(name)
        record = model.meta.get("training", {})
        rows.append({"name": name, "params": model.n_params,
                     "heldout_bpb": record.get("final_heldout_bpb"),
                     "text": _family_text(name, prompt, n, temperature, seed)})
    return rows


def family_html(prompt: str, rows: list[dict]) -> str:
    cells = "".join(
        f"<tr><td><b>{r['name']}</b></td><td>{r['params']:,}</td>"
        f"<td>{'—' if r['heldout_bpb'] is None else format(r['heldout_bpb'], '.3f')}</td>"
        f"<td style='text-align:left'><pre style='white-space:pre-wrap;margin:0'>"
        f"<b>{html.escape(prompt)}</b>{html.escape(r['text'])}</pre></td></tr>" for r in rows)
    return ("<table><tr><th>model</th><th>parameters</th><th>held-out bits/byte</th>"
            f"<th style='text-align:left'>text</th></tr>{cells}</table>")


def family_panel(prompt: str = PROMPT):
    """Widgets: prompt and temperature -> what every shipped model writes."""

    def render(prompt, temperature):
        from IPython.display import HTML

        return HTML(family_html(prompt, family_samples(prompt, temperature=temperature)))

    return panel(render, {"prompt": text_box("prompt", prompt),
                          "temperature": float_slider("temperature", 0.0, 1.5, 0.7, 0.05)})
