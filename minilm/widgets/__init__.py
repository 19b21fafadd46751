"""Interactive panels for the course notebooks, one module per chapter.

Each panel is two layers:
  * a plain function that returns data or a matplotlib `Figure` (tests call it directly, and it
    runs headless: no display, no widgets);
  * a thin `ipywidgets` layer (`*_panel()` functions) that wires sliders and text boxes to it.

    from minilm.widgets import ch03_attention as ch3
    ch3.attention_panel()                               # in a notebook cell

`common` holds what several chapters share: cached model loading, a trace of every kernel call of
a forward pass, figures, and the panel builder. ipywidgets and matplotlib are imported inside the
functions that need them, so `import minilm` (and this package) stays light.

Modules: ch00_setup (chapter 0), ch01_numba, ch02_tokens, ch03_attention, ch04_block,
ch05_generation (chapters 1-5); the k-bit, training and GPU chapters add their own `chNN_*`.
"""
