"""What a training run records about itself, so that every result can be traced and re-made.

Taught in chapter 6 (training). The record is `meta["training"]` of every checkpoint: the
command, the settings (seed, steps, ...), the sha256 of the training text and of the held-out
text and the fixed slice of it that every bits/byte figure is measured on, the step reached,
wall time, tokens seen, the latest and the final held-out bits/byte, and the software versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from pathlib import Path

import numpy as np

from .corpus import validation_corpus

HELDOUT_START = 0  # the fixed slice starts at the first byte of the held-out text


def heldout_slice(n_bytes: int) -> tuple[bytes, dict]:
    """The first `n_bytes` bytes of `validation_corpus()` and a record of which bytes they are
    (corpus name, its sha256, start, length, the slice's own sha256)."""
    corpus = validation_corpus()
    data = corpus.text.encode("utf-8")
    piece = data[HELDOUT_START:HELDOUT_START + n_bytes]
    return piece, {"name": corpus.name, "sha256": corpus.sha256, "start": HELDOUT_START,
                   "n_bytes": len(piece), "slice_sha256": sha256_bytes(piece)}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions() -> dict:
    import numba

    from . import __version__

    return {"minilm": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__}


def new_record(settings, corpus, corpus_path, command: str) -> dict:
    """The record of a run that has not taken a step yet."""
    return {
        "command": command,
        "settings": dataclasses.asdict(settings),
        "step": 0,
        "finished": False,
        "train_corpus": {"name": corpus.name, "sha256": corpus.sha256,
                         "n_bytes": corpus.n_bytes,
                         "path": None if corpus_path is None else str(Path(corpus_path))},
        "heldout": heldout_slice(settings.eval_bytes)[1],
        "wall_time_s": 0.0,
        "tokens_seen": 0,
        "heldout_bpb": None,
        "final_heldout_bpb": None,
        "versions": versions(),
    }
