"""Plain text shown under a figure in the chapter 6-12 panels (`common.panel` displays it)."""

from __future__ import annotations

import html


def caption(text: str):
    """`text` as preformatted HTML (monospace, line breaks kept, special characters escaped)."""
    from IPython.display import HTML

    return HTML(f"<pre>{html.escape(text)}</pre>")
