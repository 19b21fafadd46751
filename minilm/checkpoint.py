"""Training checkpoints that resume to the bit-identical run.

Taught in chapter 6 (training). A checkpoint is two files:
  * `NAME.npz`: a normal minilm model file (`minilm.load` reads it) whose `meta` holds the
    training record (`meta["training"]`: settings, step, corpus sha256, wall time, ...);
  * `NAME.state.npz`: what the model file lacks to continue exactly: the AdamW moments, the
    optimizer step and the random generator's state, as JSON and float32 arrays.
Both are written to temporary files first and then renamed, so an interrupted save never leaves
a half-written checkpoint; both record the step, so a mismatched pair is detected.
`stop_on_interrupt` turns Ctrl-C into "finish this step, save a checkpoint, stop".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .params import load_params, save_params

STATE_KEY = "__state__"


def model_path(path) -> Path:
    """The .npz model file of a checkpoint (".npz" is added when missing)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")


def state_path(path) -> Path:
    """The optimizer/RNG side file beside a checkpoint's model file."""
    path = model_path(path)
    return path.with_name(path.stem + ".state.npz")


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path, config: ModelConfig, params: dict, meta: dict, optimizer,
                    rng: np.random.Generator) -> Path:
    """Write the model (with `meta`) and the side file; returns the model file's path."""
    path = model_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": meta["training"]["step"], "optimizer_t": optimizer.t,
             "rng": rng.bit_generator.state}
    _replace_atomically(state_path(path), lambda tmp: np.savez(
        tmp, **{STATE_KEY: np.array(json.dumps(state))}, **optimizer.state_arrays()))
    _replace_atomically(path, lambda tmp: save_params(tmp, config, params, meta))
    return path


@dataclass
class Checkpoint:
    """What `load_checkpoint` read: the model part, and what the optimizer and RNG need."""

    config: ModelConfig
    params: dict  # writable float32 copies
    meta: dict  # meta["training"]: the training record
    optimizer_arrays: dict  # AdamW.state_arrays() as saved
    optimizer_t: int  # AdamW.t as saved
    rng: np.random.Generator  # in the saved state


def load_checkpoint(path) -> Checkpoint:
    """Read both files of a checkpoint (clear errors if it is not a resumable one)."""
    path = model_path(path)
    config, params, meta = load_params(path)
    if "training" not in meta:
        raise ValueError(f"{path} holds no training record: not a training checkpoint "
                         "(only files written by `minilm train` can be resumed)")
    side = state_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"{path} has no optimizer state file {side.name} beside it; "
                                "it cannot be resumed exactly")
    with np.load(side, allow_pickle=False) as archive:
        state = json.loads(str(archive[STATE_KEY]))
        arrays = {n: archive[n] for n in archive.files if n != STATE_KEY}
    if state["step"] != meta["training"]["step"]:
        raise ValueError(f"{path.name} is at step {meta['training']['step']} but {side.name} "
                         f"at step {state['step']}: the pair does not belong together")
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    params = {n: np.array(p, dtype=np.float32) for n, p in params.items()}
    return Checkpoint(config, params, meta, arrays, state["optimizer_t"], rng)


@contextlib.contextmanager
def stop_on_interrupt():
    """Inside, the first Ctrl-C (SIGINT) only sets the yielded `threading.Event`: the training
    loop finishes its step, saves a checkpoint and stops. A second Ctrl-C interrupts at once,
    without saving. Signals can only be caught in the main thread; elsewhere Ctrl-C is as usual.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)
    previous = signal.default_int_handler if previous is None else previous

    def first_interrupt(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)
        print("\nCtrl-C: stopping after this step to save a checkpoint "
              "(press it again to stop at once, without saving)", file=sys.stderr)

    signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
