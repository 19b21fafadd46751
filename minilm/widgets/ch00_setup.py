"""Chapter 0 (welcome): the setup check, and a first widget over a trained model.

`setup_checks()` tries what the course needs (Numba compiles, its threads, a GPU, the shipped
models, the widget libraries) and says what it found; `minilm info` adds the CUDA simulator.
"""

from __future__ import annotations

import html
import sys
import time

from .common import DEFAULT_MODEL, load_model, panel, text_box

OK, INFO, PROBLEM = "ok", "info", "problem"
MARKS = {OK: "✅", INFO: "ℹ️", PROBLEM: "❌"}


def _numba_compiles() -> tuple[str, str]:
    from numba import njit

    def add(a, b):
        return a + b

    start = time.perf_counter()
    result = njit(add)(1, 2)
    seconds = time.perf_counter() - start
    if result != 3:
        return PROBLEM, f"a compiled add(1, 2) gave {result}"
    return OK, f"compiled a first function in {seconds:.2f} s"


def _gpu() -> tuple[str, str]:
    try:
        from numba import cuda

        if cuda.is_available():
            return OK, "a CUDA GPU is visible to numba.cuda"
        return INFO, "no CUDA GPU visible - fine: the GPU chapter also runs in the CUDA simulator"
    except Exception as error:  # a broken CUDA install must not stop the other checks
        return INFO, f"numba.cuda unusable ({type(error).__name__}: {error})"


def setup_checks() -> list[tuple[str, str, str]]:
    """(what, status, detail) rows; status is "ok", "info" (fine, just so you know) or
    "problem". `minilm info` adds the CUDA simulator check (it starts a second Python)."""
    import matplotlib
    import numba
    import numpy as np

    import minilm

    from ..kernels.threads import n_threads

    python_ok = sys.version_info >= (3, 11)
    rows = [("Python", OK if python_ok else PROBLEM,
             f"{sys.version.split()[0]}" + ("" if python_ok else " (the course needs >= 3.11)")),
            ("NumPy / Numba", OK, f"numpy {np.__version__}, numba {numba.__version__}"),
            ("Numba compiles", *_numba_compiles()),
            ("Numba threads", OK if n_threads() > 1 else INFO,
             f"{n_threads()} threads ({numba.config.THREADING_LAYER} layer)"
             + ("" if n_threads() > 1 else ": prange kernels will not run in parallel"))]
    rows.append(("GPU", *_gpu()))
    models = minilm.available_models()
    rows.append(("trained models", OK if models else PROBLEM,
                 ", ".join(models) if models else "none found in minilm/checkpoints"))
    try:
        import ipywidgets

        rows.append(("widgets", OK, f"ipywidgets {ipywidgets.__version__}, "
                                    f"matplotlib {matplotlib.__version__}"))
    except ImportError as error:
        rows.append(("widgets", PROBLEM, str(error)))
    return rows


def checks_html(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<tr><td>{MARKS[status]}</td><td><b>{html.escape(what)}</b></td>"
                   f"<td style='text-align:left'>{html.escape(detail)}</td></tr>"
                   for what, status, detail in rows)
    return f"<table>{body}</table>"


def first_look_panel(model_name: str = DEFAULT_MODEL, prompt: str = "import numpy as "):
    """A text box -> the trained model's guesses for the next byte and its greedy continuation."""
    from ..generate import generate
    from .ch05_generation import WIDGET_BACKEND, next_byte_figure

    model = load_model(model_name)

    def render(prompt):
        from IPython.display import HTML

        text = generate(model, prompt, 60, temperature=0, backend=WIDGET_BACKEND)
        return (next_byte_figure(model, prompt, shown=12),
                HTML(f"<pre><b>{html.escape(prompt)}</b>{html.escape(text)}</pre>"))

    return panel(render, {"prompt": text_box("type here", prompt)})
