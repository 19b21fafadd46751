"""Chapter 6 (training): a short live training run, and the shipped family beside the baselines.

    log = short_training(on_step=...)        # a tiny model for a few hundred steps, its log
    fig = loss_figure(log, baselines())      # training loss and held-out bits/byte per step
    live_training()                          # the same with a plot redrawn while it trains
    schedule_panel()                         # sliders over the warm-up + cosine schedule
    results = backward_timings()             # reference vs Numba backward kernels, checked
    rows = family_table()                    # each shipped checkpoint's training record
    fig = family_figure(rows, baselines())   # held-out bits/byte vs parameters

The run goes through `minilm.train.train` itself (written to a temporary folder), so the
notebook shows the real training loop, not a copy.
"""

from __future__ import annotations

import functools
import math
import tempfile

from ..bench import compare
from ..config import ModelConfig
from ..optim import lr_at
from ..train import TrainConfig, train
from .common import figure, float_slider, int_slider, panel

LIVE_MODEL = ModelConfig(d_model=32, n_heads=2, n_layers=1, d_ff=128, max_seq_len=64)
LIVE_SETTINGS = TrainConfig(steps=400, batch_size=16, lr=5e-3, eval_every=50, eval_bytes=8192)
NATS_TO_BITS = 1 / math.log(2)


def short_training(config: ModelConfig = LIVE_MODEL, settings: TrainConfig = LIVE_SETTINGS,
                   on_step=None) -> list[dict]:
    """Train `config` with `settings` in a temporary folder; return the per-step log records
    (step, loss in nats, lr, grad_norm, tokens_per_s, val_bpb or None, elapsed_s).
    on_step(log) is called after every step with the log so far."""
    log: list[dict] = []

    def record(entry):
        log.append(entry)
        if on_step is not None:
            on_step(log)

    with tempfile.TemporaryDirectory() as folder:
        train(config, settings, f"{folder}/live.npz", progress=False, callback=record)
    return log


@functools.cache
def baselines() -> dict[str, float]:
    """Bits/byte of the byte unigram and 4-gram baselines on the held-out slice every
    checkpoint is scored on (the first 65536 bytes of the held-out text)."""
    from ..baselines import baselines as count_baselines
    from ..corpus import train_corpus
    from ..run_record import heldout_slice

    return count_baselines(train_corpus().text, heldout_slice(65536)[0])


def loss_figure(log: list[dict], reference: dict[str, float] | None = None, total_steps=None):
    """Training loss (bits/byte of the batch) and held-out bits/byte against the step."""
    fig = figure(8, 3.6)
    ax = fig.subplots()
    steps = [e["step"] for e in log]
    ax.plot(steps, [e["loss"] * NATS_TO_BITS for e in log], lw=0.8, alpha=0.7,
            label="training batch")
    evals = [e for e in log if e["val_bpb"] is not None]
    ax.plot([e["step"] for e in evals], [e["val_bpb"] for e in evals], "o-", color="tab:red",
            label="held-out text")
    for (name, bpb), style in zip((reference or {}).items(), (":", "--"), strict=False):
        ax.axhline(bpb, color="k", ls=style, lw=1, label=f"{name} baseline ({bpb:.2f})")
    ax.set(xlabel="step", ylabel="bits per byte", ylim=(1.5, 8.5),
           xlim=(0, total_steps or max(steps, default=1)),
           title=f"training: step {steps[-1] if steps else 0}, "
                 f"{log[-1]['tokens_per_s'] if log else 0:,.0f} tokens/s")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig


def live_training(config: ModelConfig = LIVE_MODEL, settings: TrainConfig = LIVE_SETTINGS,
                  redraw_every: int = 25) -> list[dict]:
    """Run `short_training` in a notebook with the loss plot redrawn every `redraw_every` steps;
    returns the log."""
    from IPython.display import display

    reference = baselines()
    handle = display(display_id=True)

    def draw(log):
        if len(log) % redraw_every == 0 or log[-1]["step"] == settings.steps:
            handle.update(loss_figure(log, reference, settings.steps))

    return short_training(config, settings, draw)


def family_table() -> list[dict]:
    """One row per shipped checkpoint, smallest first: name, params, shape, and its training
    record (final held-out bits/byte, wall time, tokens seen, the command that made it)."""
    from ..model import available_models, load

    rows = []
    for name in available_models():
        model = load(name)
        record = model.meta.get("training", {})
        c = model.config
        rows.append({"name": name, "params": model.n_params, "d_model": c.d_model,
                     "n_layers": c.n_layers, "n_heads": c.n_heads, "max_seq_len": c.max_seq_len,
                     "final_heldout_bpb": record.get("final_heldout_bpb"),
                     "wall_time_s": record.get("wall_time_s"),
                     "tokens_seen": record.get("tokens_seen"), "command": record.get("command")})
    return rows


def format_family(rows: list[dict], reference: dict[str, float]) -> str:
    """The family and the baselines as a text table."""
    lines = [f"{'model':<12}{'params':>10}{'C':>5}{'L':>3}{'H':>3}{'T':>5}"
             f"{'held-out bpb':>14}{'train min':>11}  command"]
    for r in rows:
        bpb = "-" if r["final_heldout_bpb"] is None else f"{r['final_heldout_bpb']:.3f}"
        minutes = "-" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.1f}"
        lines.append(f"{r['name']:<12}{r['params']:>10,}{r['d_model']:>5}{r['n_layers']:>3}"
                     f"{r['n_heads']:>3}{r['max_seq_len']:>5}{bpb:>14}{minutes:>11}  "
                     f"{r['command']}")
    lines += [f"{name + ' baseline':<38}{bpb:>14.3f}" for name, bpb in reference.items()]
    return "\n".join(lines)


def family_figure(rows: list[dict], reference: dict[str, float]):
    """Held-out bits/byte against parameters (log x) for the family, baselines as lines."""
    fig = figure(7, 3.6)
    ax = fig.subplots()
    scored = [r for r in rows if r["final_heldout_bpb"] is not None]
    ax.plot([r["params"] for r in scored], [r["final_heldout_bpb"] for r in scored], "o-")
    for r in scored:
        ax.annotate(r["name"], (r["params"], r["final_heldout_bpb"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    for (name, bpb), style in zip(reference.items(), (":", "--"), strict=False):
        ax.axhline(bpb, color="k", ls=style, lw=1, label=f"{name} baseline")
    ax.set(xscale="log", xlabel="parameters", ylabel="held-out bits per byte",
           title="the shipped family")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def schedule_figure(steps: int = 3600, peak: float = 4e-3, warmup: int = 180,
                    min_ratio: float = 0.1):
    """The learning rate of every step (`optim.lr_at`): linear warm-up, then a cosine."""
    fig = figure(7, 3)
    ax = fig.subplots()
    ax.plot(range(steps), [lr_at(s, steps, peak, warmup, min_ratio) for s in range(steps)])
    ax.axvline(warmup, color="0.6", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="learning rate", ylim=(0, peak * 1.05),
           title=f"warm-up {warmup} steps, cosine to {min_ratio:g} x peak")
    ax.grid(alpha=0.3)
    return fig


def schedule_panel(steps: int = 3600, peak: float = 4e-3):
    """Sliders warm-up and min_ratio over `schedule_figure`."""
    return panel(lambda warmup, min_ratio: schedule_figure(steps, peak, warmup, min_ratio),
                 {"warmup": int_slider("warm-up steps", 1, steps // 2, steps // 20),
                  "min_ratio": float_slider("min_ratio", 0.0, 1.0, 0.1, 0.05)})


def backward_timings(heads: int = 4, seq_len: int = 256, dim: int = 32, rows: int = 2048,
                     width: int = 128, repeats: int = 5) -> list:
    """The NumPy references of `minilm.backward` against the Numba kernels of
    `minilm.kernels.backward_cpu` (checked first, then timed): attention (H, T, D) and
    LayerNorm (rows, C). Returns `bench.Result`s (print them with `bench.format_table`)."""
    import numpy as np

    from .. import backward
    from ..kernels import backward_cpu

    rng = np.random.default_rng(0)
    q, k, v, d_out = (rng.standard_normal((heads, seq_len, dim), dtype=np.float32)
                      for _ in range(4))
    x, d_y = (rng.standard_normal((rows, width), dtype=np.float32) for _ in range(2))
    gamma = rng.standard_normal(width, dtype=np.float32)
    results = []
    for name, args in (("attention_backward", (q, k, v, d_out)),
                       ("layernorm_backward", (x, gamma, d_y))):
        fast, ref = getattr(backward_cpu, name), getattr(backward, name)
        results += compare(name, {"numba": lambda f=fast, a=args: np.concatenate(
            [g.ravel() for g in f(*a)])}, lambda f=ref, a=args: np.concatenate(
            [g.ravel() for g in f(*a)]), 1, "calls/s", repeats, atol=1e-3, rtol=1e-3)
    return results


def step_profile_table(quick: bool = True) -> str:
    """`minilm bench train-parts`: where one training step spends its time, kernel by kernel,
    in the NumPy reference and in the Numba kernels (the minilm-s recipe, or minilm-m with
    quick=False). It runs in a fresh Python process, as `minilm train` does: the training loop's
    thread settings (`threads.tune_for_training`) only take effect before a process's first
    parallel kernel, and this notebook has run many."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "minilm", "bench", *(["--quick"] if quick else []),
               "train-parts"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
