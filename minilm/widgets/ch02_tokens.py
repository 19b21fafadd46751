"""Chapter 2 (tokens and embeddings): text -> byte tokens -> embedding vectors, and their shapes.

The model's first step, `x = tok_emb[tokens] + pos_emb[:T]` (`MiniLM._forward`), drawn for the
reader's own text with a trained model's tables.
"""

from __future__ import annotations

import html

import numpy as np

from ..bench import median_time
from ..tokenizer import ByteTokenizer
from .common import DEFAULT_MODEL, byte_label, figure, int_slider, load_model, panel, text_box


def token_rows(text: str) -> list[tuple[str, list[int]]]:
    """(character, its token ids) for every character: one token per UTF-8 byte."""
    tokenizer = ByteTokenizer()
    return [(char, tokenizer.encode(char).tolist()) for char in text]


def tokens_html(text: str) -> str:
    """An HTML strip: each character above the byte tokens it becomes."""
    cells = []
    for char, ids in token_rows(text):
        shown = html.escape(byte_label(ord(char)) if len(char.encode()) == 1 else char)
        color = "#dbeafe" if len(ids) == 1 else "#fde68a"  # multi-byte characters stand out
        cells.append(f"<td style='background:{color};text-align:center;padding:2px 5px'>"
                     f"<b>{shown}</b><br><small>{' '.join(map(str, ids))}</small></td>")
    n_bytes = sum(len(ids) for _, ids in token_rows(text))
    return (f"<p>{len(text)} characters &rarr; <b>{n_bytes} tokens</b> (bytes)</p>"
            f"<table style='border-collapse:separate;border-spacing:2px'><tr>{''.join(cells)}"
            "</tr></table>")


def shapes(config, seq_len: int, batch: int = 1) -> list[tuple[str, tuple, str]]:
    """(array, shape, meaning) for the embedding step of a model with this config."""
    c, v, t, b = config.d_model, config.vocab_size, seq_len, batch
    return [
        ("tokens", (b, t), "byte ids, one per position"),
        ("tok_emb", (v, c), "one row of C numbers per byte value (learned)"),
        ("tok_emb[tokens]", (b, t, c), "the rows of the tokens, looked up"),
        ("pos_emb", (config.max_seq_len, c), "one row per position (learned)"),
        ("pos_emb[:T]", (t, c), "the rows of positions 0..T-1"),
        ("x = tok_emb[tokens] + pos_emb[:T]", (b, t, c), "broadcast over B: the residual stream"),
        ("logits = ln_f(x) @ tok_emb.T", (b, t, v), "after the blocks: a score per next byte"),
    ]


def shapes_html(config, seq_len: int, batch: int = 1) -> str:
    rows = "".join(f"<tr><td><code>{html.escape(name)}</code></td><td><code>{shape}</code></td>"
                   f"<td>{meaning}</td></tr>" for name, shape, meaning in
                   shapes(config, seq_len, batch))
    return (f"<table><tr><th>array</th><th>shape (B={batch}, T={seq_len}, C={config.d_model}, "
            f"V={config.vocab_size})</th><th>meaning</th></tr>{rows}</table>")


def embedding_figure(model, tokens: np.ndarray):
    """Heat maps of tok_emb[tokens], pos_emb[:T] and their sum x, one row per position."""
    p, t = model.params, len(tokens)
    parts = [("tok_emb[tokens]", p["tok_emb"][tokens]),  # (T, C)
             ("pos_emb[:T]", p["pos_emb"][:t]),  # (T, C)
             ("x = sum", p["tok_emb"][tokens] + p["pos_emb"][:t])]  # (T, C)
    limit = float(np.abs(parts[-1][1]).max())
    height = 1.5 + 0.13 * t
    fig = figure(11, height, layout=None)
    fig.subplots_adjust(left=0.07, right=0.9, bottom=0.6 / height, top=1 - 0.35 / height,
                        wspace=0.08)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (title, values) in zip(axes, parts, strict=True):
        image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                          interpolation="nearest")
        ax.set(title=f"{title}  {values.shape}", xlabel="channel c")
    axes[0].set_yticks(range(t), [byte_label(int(tok)) for tok in tokens],
                       fontsize=7 if t > 24 else 9)
    axes[0].set_ylabel("position (token)")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def embedding_panel(model_name: str = DEFAULT_MODEL, text: str = "Hello, wörld! 👋"):
    """Your text -> its tokens; a sequence-length slider -> shapes and embedding heat maps."""
    model = load_model(model_name)

    def render(text, seq_len):
        from IPython.display import HTML

        tokens = ByteTokenizer().encode(text or " ")[:model.config.max_seq_len]
        shown = tokens[:seq_len]
        return (HTML(tokens_html(text)), HTML(shapes_html(model.config, len(shown))),
                embedding_figure(model, shown))

    return panel(render, {"text": text_box("your text", text),
                          "seq_len": int_slider("sequence length T", 1, 48, 12)})


def byte_map_figure(model):
    """The token embeddings of the printable ASCII bytes, projected on their first two principal
    axes (left), and the cosine similarity of every pair of position embeddings (right)."""
    table = model.params["tok_emb"]
    printable = np.arange(33, 127)
    rows = table[printable] - table[printable].mean(axis=0)  # (94, C)
    _, _, axes_t = np.linalg.svd(rows, full_matrices=False)
    xy = rows @ axes_t[:2].T  # (94, 2)
    fig = figure(11, 4.5)
    ax_bytes, ax_pos = fig.subplots(1, 2)
    groups = {"letters": str.isalpha, "digits": str.isdigit,
              "punctuation": lambda ch: not ch.isalnum()}
    for i, (label, test) in enumerate(groups.items()):
        chosen = [j for j, b in enumerate(printable) if test(chr(b))]
        ax_bytes.scatter(xy[chosen, 0], xy[chosen, 1], s=6, color=f"C{i}", label=label)
        for j in chosen:
            ax_bytes.annotate(chr(printable[j]), xy[j], fontsize=8, color=f"C{i}")
    ax_bytes.set(title="token embeddings (PCA, 2 of C dims)", xlabel="axis 1", ylabel="axis 2")
    ax_bytes.legend(fontsize=8)
    pos = model.params["pos_emb"]
    unit = pos / np.linalg.norm(pos, axis=1, keepdims=True)
    image = ax_pos.imshow(unit @ unit.T, cmap="RdBu_r", vmin=-1, vmax=1)
    ax_pos.set(title="cosine similarity of position embeddings", xlabel="position",
               ylabel="position")
    fig.colorbar(image, ax=ax_pos, shrink=0.8)
    return fig


def lookup_vs_one_hot(model, seq_len: int = 128, repeats: int = 7) -> dict[str, float]:
    """Seconds for the embedding as a row lookup `tok_emb[tokens]` and as the equivalent matrix
    product `one_hot(tokens) @ tok_emb` (which multiplies by V - 1 zeros per row); "same" is
    1.0 when both give identical arrays."""
    table = model.params["tok_emb"]  # (V, C)
    tokens = np.random.default_rng(0).integers(0, table.shape[0], seq_len)  # (T,)
    one_hot = np.eye(table.shape[0], dtype=np.float32)[tokens]  # (T, V)
    return {"same": float(np.array_equal(one_hot @ table, table[tokens])),
            "lookup": median_time(lambda: table[tokens], repeats),
            "one-hot matmul": median_time(lambda: one_hot @ table, repeats)}
