"""The minilm family: five model sizes and how to train each (`minilm train --preset NAME`).

Taught in chapter 6 (training) and used by the k-bit scaling-law chapter, which needs trained
models of growing size. Each recipe is a `ModelConfig` plus a `TrainConfig`. The four smaller
members see the same number of training bytes (about 7.4 M: 3600 steps of 16 x 128, or 1800 of
16 x 256); minilm-xl, the furthest from converged, gets 2100 steps (8.6 M bytes), as many as fit
in 40 minutes on 2 cores with a margin. The learning rate shrinks as the width grows.

    name        params   d_model heads layers d_ff   T   steps  batch   lr     idle 2-core
    minilm-xs     25 k      32     2     1    128   128   3600    16    5e-3      ~1 min
    minilm-s     125 k      64     4     2    256   128   3600    16    4e-3      ~3 min
    minilm-m     661 k     128     4     3    512   256   1800    16    2e-3      ~7 min
    minilm-l     1.9 M     192     6     4    768   256   1800    16    1.5e-3   ~19 min
    minilm-xl    3.3 M     256     8     4   1024   256   2100    16    1e-3     ~35 min

The minutes are the wall times of the shipped runs on an otherwise idle 2-core machine
(evaluations included); `estimate_minutes(name)` measures the wall time on this machine.
"""

from __future__ import annotations

from typing import NamedTuple

from .config import ModelConfig
from .train import TrainConfig


class Recipe(NamedTuple):
    """A named member of the family: its shape and how to train it."""

    model: ModelConfig
    train: TrainConfig


def _recipe(d_model, n_heads, n_layers, max_seq_len, steps, lr, eval_every=250) -> Recipe:
    model = ModelConfig(d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                        d_ff=4 * d_model, max_seq_len=max_seq_len)
    return Recipe(model, TrainConfig(steps=steps, batch_size=16, lr=lr, eval_every=eval_every))


TRAINING_PRESETS: dict[str, Recipe] = {
    "minilm-xs": _recipe(32, 2, 1, 128, steps=3600, lr=5e-3),
    "minilm-s": _recipe(64, 4, 2, 128, steps=3600, lr=4e-3),
    "minilm-m": _recipe(128, 4, 3, 256, steps=1800, lr=2e-3),
    "minilm-l": _recipe(192, 6, 4, 256, steps=1800, lr=1.5e-3),
    "minilm-xl": _recipe(256, 8, 4, 256, steps=2100, lr=1e-3, eval_every=300),
}


def recipe(name: str) -> Recipe:
    """The recipe of a family member (a clear error for an unknown name)."""
    if name not in TRAINING_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(TRAINING_PRESETS)}")
    return TRAINING_PRESETS[name]


def shipped_table() -> list[dict]:
    """One row per shipped checkpoint (smallest first), from the record each one carries:
    name, parameters, shape, steps, training tokens, wall minutes, held-out bits/byte (on the
    record's fixed slice), file MB, the command that made it and the training text's sha256."""
    from .model import CHECKPOINT_DIR, available_models, load

    rows = []
    for name in available_models():
        model = load(name)
        c, record = model.config, model.meta.get("training", {})
        rows.append({
            "name": name, "params": model.n_params,
            "shape": f"C={c.d_model} H={c.n_heads} L={c.n_layers} F={c.d_ff} T={c.max_seq_len}",
            "steps": record.get("step"), "tokens": record.get("tokens_seen"),
            "minutes": record.get("wall_time_s", float("nan")) / 60,
            "heldout_bpb": record.get("final_heldout_bpb"),
            "mb": (CHECKPOINT_DIR / f"{name}.npz").stat().st_size / 1e6,
            "command": record.get("command"),
            "corpus_sha256": record.get("train_corpus", {}).get("sha256")})
    return rows


def estimate_minutes(name: str, measure_steps: int = 20, backend: str = "cpu") -> dict:
    """Run `measure_steps` + 1 steps of a preset (into a temporary folder) and extrapolate the
    median step time (the first step, which compiles, is left out) to its full run.

    Returns {"s_per_step", "tokens_per_s", "minutes"}; the periodic held-out evaluation adds a
    little more.
    """
    import dataclasses
    import tempfile

    import numpy as np

    from .train import train

    model, settings = recipe(name)
    short = dataclasses.replace(settings, steps=measure_steps + 1, eval_every=0, eval_bytes=2,
                                backend=backend)
    rates = []
    with tempfile.TemporaryDirectory() as folder:
        train(model, short, f"{folder}/estimate.npz", progress=False,
              callback=lambda entry: rates.append(entry["tokens_per_s"]))
    tokens_per_s = float(np.median(rates[1:]))
    per_step = settings.batch_size * settings.window(model) / tokens_per_s
    return {"s_per_step": per_step, "tokens_per_s": tokens_per_s,
            "minutes": per_step * settings.steps / 60}
