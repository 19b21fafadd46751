"""What the chapter panels share: cached models, a trace of one forward pass, figures, panels.

Used by every chapter's widget module (chapters 0-12). The trace is how chapters 3 and 4 look
inside the model: it runs the model's own forward pass with a kernel namespace that records every
kernel call, so the attention maps and residual streams shown are exactly what the model computed.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np

DEFAULT_MODEL = "minilm-s"  # the shipped model the chapters look inside by default


@functools.lru_cache(maxsize=8)
def load_model(name: str):
    """`minilm.load(name)`, loaded once per name and kept (the panels reload it on every move)."""
    import minilm

    return minilm.load(name)


@dataclass
class KernelCall:
    """One kernel call of a forward pass: its name, positional arguments and result."""

    name: str
    args: tuple
    out: np.ndarray


class _Recorder:
    """A kernel namespace that runs the kernels of `kernels` and records every call."""

    def __init__(self, kernels):
        self._kernels = kernels
        self.calls: list[KernelCall] = []

    def __getattr__(self, name):
        kernel = getattr(self._kernels, name)

        def recorded(*args, **kwargs):
            out = kernel(*args, **kwargs)
            self.calls.append(KernelCall(name, args, out))
            return out

        return recorded


@dataclass
class Trace:
    """Everything one forward pass over `tokens` (T,) computed, kernel call by kernel call."""

    tokens: np.ndarray  # (T,)
    logits: np.ndarray  # (T, V)
    calls: list[KernelCall]

    def of(self, name: str) -> list[KernelCall]:
        """The calls of one kernel ("attention", "layernorm", "ffn", ...) in order."""
        return [call for call in self.calls if call.name == name]

    def attention_weights(self) -> list[np.ndarray]:
        """Per layer, the attention weights of every head: (H, T, T), rows sum to 1."""
        from ..kernels.attention import attention_probs

        return [attention_probs(call.args[0][0], call.args[1][0])  # q, k: (H, T, D)
                for call in self.of("attention")]

    def residual_stream(self) -> list[tuple[str, np.ndarray]]:
        """(label, x (T, C)) at every point a LayerNorm reads the residual stream: after the
        embeddings, after each block's attention and after its FFN (the last feeds ln_f)."""
        inputs = [call.args[0][0] for call in self.of("layernorm")]  # each (T, C)
        n_layers = (len(inputs) - 1) // 2
        labels = ["embeddings"] + [f"{i}: + {part}" for i in range(n_layers)
                                   for part in ("attention", "FFN")]
        return list(zip(labels, inputs, strict=True))


def trace(model, tokens, backend: str = "reference") -> Trace:
    """Run `model`'s forward pass over tokens (T,) and record every kernel call it makes."""
    from ..backend import ops

    recorder = _Recorder(ops(backend))
    tokens = np.asarray(tokens)
    logits = model.forward(tokens, backend, kernels=recorder)  # (T, V)
    return Trace(tokens, logits, recorder.calls)


def byte_label(token: int) -> str:
    """A short printable label for a byte token (for axis ticks): 'a', '␣', '⏎', 'xE9'."""
    special = {ord(" "): "␣", ord("\n"): "⏎", ord("\t"): "⇥"}
    if token in special:
        return special[token]
    return chr(token) if 33 <= token < 127 else f"x{token:02X}"


def figure(width: float = 7.0, height: float = 3.5, layout: str | None = "constrained"):
    """A new matplotlib Figure (not registered with pyplot, so it is freed once not shown).

    The constrained layout can take half of the drawing time of a figure with many labels;
    panels that redraw often pass layout=None and place their axes with `subplots_adjust`."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def source(obj):
    """The source code of a function or class, highlighted in the notebook (`inspect`)."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def int_slider(description: str, lo: int, hi: int, value: int, step: int = 1):
    """An IntSlider that reports its value when released (each move redraws a figure)."""
    import ipywidgets as w

    return w.IntSlider(value=value, min=lo, max=hi, step=step, description=description,
                       continuous_update=False, style={"description_width": "initial"})


def float_slider(description: str, lo: float, hi: float, value: float, step: float):
    import ipywidgets as w

    return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                         continuous_update=False, style={"description_width": "initial"})


def text_box(description: str, value: str):
    """A one-line text box that reports its value on Enter or when it loses focus."""
    import ipywidgets as w

    return w.Text(value=value, description=description, continuous_update=False,
                  layout=w.Layout(width="60%"), style={"description_width": "initial"})


def panel(render, controls: dict):
    """Controls above an output area showing `render(**values)` (a Figure, text, HTML or a
    tuple of them), redrawn whenever a control changes; "updating" shows while it computes."""
    import ipywidgets as w
    from IPython.display import display

    status = w.Label()

    def show(**values):
        status.value = "⏳ updating…"
        try:
            shown = render(**values)
            display(*(shown if isinstance(shown, tuple) else (shown,)))
        finally:
            status.value = ""

    output = w.interactive_output(show, controls)
    row = w.HBox([*controls.values(), status], layout=w.Layout(flex_flow="row wrap"))
    return w.VBox([row, output])
