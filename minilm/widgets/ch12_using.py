"""Chapter 12 (using the model): scoring text by likelihood and classifying by comparing them.

    bits = text_bits(model, "The file is closed.")         # -log2 p(text), summed over bytes
    ranked = rank_texts(model, ["teh file", "the file"])   # most likely first
    scores = class_scores(model, text, EXAMPLE_CLASSES)    # bits of text after each class's
    label = classify(model, text, EXAMPLE_CLASSES)         #   examples; the fewest bits wins
    fig = surprisal_figure(model, text)                    # bits of every byte
    scoring_panel(model)                                   # a text box over all of it

Everything is computed by `minilm.surprisal` (the per-byte -log2 p of the model).
"""

from __future__ import annotations

import numpy as np

from ..evaluate import surprisal
from .caption import caption
from .common import figure, panel, text_box

# Classes described by a few examples each; classification primes the model with them.
EXAMPLE_CLASSES = {
    "python code": "x = len(items)\nfor i in range(n):\n    total += i\nreturn total\n"
                   "if key in cache:\n    del cache[key]\n",
    "english prose": "Return the number of items in the list.\nOpen the file and return a "
                     "stream.\nThe default value is None.\n",
    "german prose": "Die Funktion gibt die Anzahl zurueck.\nDer Hund schlaeft im Haus.\n"
                    "Das ist ein gutes Buch.\n",
}
# Short texts with their true class, to measure the accuracy of `classify`.
LABELLED_TEXTS = [
    ("if x > 0:\n    y = x * 2\n", "python code"),
    ("while True:\n    data = f.read(n)\n", "python code"),
    ("def area(r):\n    return 3.14 * r ** 2\n", "python code"),
    ("Open the file and read its lines.", "english prose"),
    ("This module provides a simple interface.", "english prose"),
    ("The default value is used when no key is given.", "english prose"),
    ("Die Katze sitzt auf dem Dach.", "german prose"),
    ("Ich habe heute keine Zeit.", "german prose"),
    ("Das Buch liegt auf dem Tisch.", "german prose"),
]


def text_bits(model, text: str, context: str = "\n") -> float:
    """-log2 p(text | context) in bits: the surprisal of text's bytes after `context`."""
    n = len(text.encode("utf-8"))
    if n == 0:
        raise ValueError("text must not be empty")
    return float(surprisal(model, context + text)[-n:].sum())


def rank_texts(model, texts: list[str]) -> list[dict]:
    """[{"text", "bits", "bits_per_byte"}] sorted from most to least likely (fewest bits)."""
    rows = [{"text": t, "bits": text_bits(model, t)} for t in texts]
    for row in rows:
        row["bits_per_byte"] = row["bits"] / len(row["text"].encode("utf-8"))
    return sorted(rows, key=lambda row: row["bits"])


def class_scores(model, text: str, classes: dict[str, str] = EXAMPLE_CLASSES) -> dict:
    """{label: bits of `text` when the model has just read that class's examples}.

    The example text is the context; fewer bits mean the text continues it more naturally.
    """
    return {label: text_bits(model, text, examples) for label, examples in classes.items()}


def classify(model, text: str, classes: dict[str, str] = EXAMPLE_CLASSES) -> str:
    """The label whose examples make `text` most likely."""
    scores = class_scores(model, text, classes)
    return min(scores, key=scores.get)


def accuracy(model, labelled=LABELLED_TEXTS, classes: dict[str, str] = EXAMPLE_CLASSES):
    """(fraction correct, [(text, true label, predicted label)]) of `classify` on `labelled`."""
    results = [(text, label, classify(model, text, classes)) for text, label in labelled]
    return sum(true == got for _, true, got in results) / len(results), results


def surprisal_figure(model, text: str):
    """One bar per byte: how many bits the model needed for it (the first byte is given)."""
    import matplotlib

    data = text.encode("utf-8")
    if len(data) < 2:
        raise ValueError("text must hold at least 2 bytes")
    bits = surprisal(model, data)  # (n - 1,)
    fig = figure(min(14, 1.5 + 0.16 * bits.size), 3.2)
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis"](np.minimum(bits, 12) / 12)
    ax.bar(np.arange(bits.size), bits, color=colors)
    labels = [chr(b) if 32 <= b < 127 else f"\\x{b:02x}" if b != 10 else "\\n"
              for b in data[1:]]
    ax.set_xticks(np.arange(bits.size), labels, fontsize=8, family="monospace")
    ax.set(ylabel="bits", xlim=(-0.7, bits.size - 0.3),
           title=f"{bits.sum():.1f} bits for {bits.size} bytes = {bits.mean():.2f} bits/byte")
    return fig


def describe_scores(model, text: str, classes: dict[str, str] = EXAMPLE_CLASSES) -> str:
    scores = class_scores(model, text, classes)
    best = min(scores, key=scores.get)
    return "\n".join(["bits of the text after the examples of each class (fewest wins):"]
                     + [f"  {label:<15} {bits:7.1f}{'   <- ' if label == best else ''}"
                        for label, bits in scores.items()])


def scoring_panel(model, text: str = "The file is closed when the block ends."):
    """A text box over `surprisal_figure` and `describe_scores`."""
    return panel(lambda text: (surprisal_figure(model, text),
                               caption(describe_scores(model, text))),
                 {"text": text_box("your text", text)})
