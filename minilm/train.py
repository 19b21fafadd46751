"""The training loop: random windows of a corpus, AdamW steps, evaluation, checkpoints, a log.

Taught in chapter 6 (training).

    from minilm.train import TrainConfig, train
    model = train(minilm.ModelConfig(d_model=64, n_heads=2, n_layers=2, d_ff=256,
                                     max_seq_len=128), TrainConfig(steps=500), out="m.npz")

Each step draws `batch_size` windows of `seq_len + 1` bytes at random places of the training
text (a seeded generator: the same seed gives the same run, bit for bit), computes the loss and
its gradients (`gradients.loss_and_grads`), clips them and takes an AdamW step. Every
`eval_every` steps the model is scored on a fixed slice of the held-out text (bits per byte) and
a checkpoint is written; `resume(path)` continues it to exactly the result of an uninterrupted
run. Ctrl-C finishes the current step, writes a checkpoint and then stops. Every step appends a
line to `OUT.log.jsonl`: step, loss, lr, grad_norm, tokens_per_s, val_bpb, elapsed_s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from .backend import region
from .backward import check_train_backend
from .checkpoint import load_checkpoint, model_path, save_checkpoint, stop_on_interrupt
from .config import ModelConfig
from .corpus import train_corpus
from .model import MiniLM
from .optim import AdamW, clip_grad_norm, lr_at
from .params import init_params
from .run_record import heldout_slice, new_record


def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _float(name, value, low, high, low_open=False, high_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < low or value > high or (low_open and value == low) or (
            high_open and value == high):
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape is a `ModelConfig`). Recorded in every checkpoint."""

    steps: int  # optimizer steps of the whole run
    batch_size: int = 16  # B: windows per step
    lr: float = 1e-3  # peak learning rate (after warm-up)
    seq_len: int | None = None  # T: window length; None = the model's max_seq_len
    warmup: int | None = None  # warm-up steps; None = 5% of the steps (at least 1)
    min_lr_ratio: float = 0.1  # the cosine ends at min_lr_ratio * lr
    weight_decay: float = 0.1  # AdamW's decoupled decay (weight matrices only)
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.95  # AdamW's second-moment decay
    grad_clip: float = 1.0  # clip the global gradient norm to this
    seed: int = 0  # initial weights and the order of the windows
    eval_every: int = 250  # held-out evaluation and checkpoint every N steps; 0 = at the end
    eval_bytes: int = 65536  # size of the fixed held-out slice (its first bytes)
    backend: str = "cpu"  # "cpu" (Numba) or "reference" (NumPy)

    def __post_init__(self):
        _int("steps", self.steps, 1)
        _int("batch_size", self.batch_size, 1)
        _float("lr", self.lr, 0, 1, low_open=True)
        if self.seq_len is not None:
            _int("seq_len", self.seq_len, 1)
        if self.warmup is not None:
            _int("warmup", self.warmup, 0)
        _float("min_lr_ratio", self.min_lr_ratio, 0, 1)
        _float("weight_decay", self.weight_decay, 0, 1)
        _float("beta1", self.beta1, 0, 1, high_open=True)
        _float("beta2", self.beta2, 0, 1, high_open=True)
        _float("grad_clip", self.grad_clip, 0, np.inf, low_open=True)
        _int("seed", self.seed, 0)
        _int("eval_every", self.eval_every, 0)
        _int("eval_bytes", self.eval_bytes, 2)
        check_train_backend(self.backend)

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 20)

    def window(self, config: ModelConfig) -> int:
        """The window length T for a model (checked against its max_seq_len)."""
        seq_len = self.seq_len or config.max_seq_len
        if seq_len > config.max_seq_len:
            raise ValueError(f"seq_len={seq_len} is longer than the model's max_seq_len="
                             f"{config.max_seq_len}")
        return seq_len


def sample_batch(data: np.ndarray, rng: np.random.Generator, batch_size: int, seq_len: int):
    """`batch_size` random windows of the byte array `data` -> inputs, targets (B, T) int64;
    targets are the inputs shifted by one byte (the next byte to predict)."""
    starts = rng.integers(0, data.size - seq_len, size=batch_size)  # (B,)
    windows = data[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def corpus_bytes(corpus, seq_len: int) -> np.ndarray:
    """The corpus as a uint8 array, long enough for windows of seq_len + 1 bytes."""
    data = np.frombuffer(corpus.text.encode("utf-8"), np.uint8)
    if data.size < seq_len + 1:
        raise ValueError(f"corpus {corpus.name!r} has {data.size} bytes: too short for training "
                         f"windows of seq_len + 1 = {seq_len + 1} bytes")
    return data


def train(config: ModelConfig, settings: TrainConfig, out, corpus=None, *, progress=True,
          callback=None, command: str | None = None) -> MiniLM:
    """Train a new model and save it to `out` (a checkpoint, see `checkpoint.py`).

    corpus: a UTF-8 text file (default: the standard library's docstrings). callback(record)
    is called after every step with the log record. Returns the trained model.
    """
    if not isinstance(config, ModelConfig) or not isinstance(settings, TrainConfig):
        raise TypeError("train(config, settings, ...) takes a ModelConfig and a TrainConfig, "
                        f"got {type(config).__name__} and {type(settings).__name__}")
    text = train_corpus(corpus)
    data = corpus_bytes(text, settings.window(config))
    params = init_params(config, settings.seed)
    optimizer = _optimizer(settings)(params)
    call = command or f"minilm.train.train({config!r}, {settings!r}, out={str(out)!r}, " \
                      f"corpus={None if corpus is None else str(corpus)!r})"
    record = new_record(settings, text, corpus, call)
    trainer = _Trainer(config, settings, params, optimizer, np.random.default_rng(settings.seed),
                       record, data, out)
    return trainer.run(progress, callback)


def resume(path, out=None, corpus=None, *, progress=True, callback=None,
           command: str | None = None) -> MiniLM:
    """Continue the run saved in checkpoint `path` (to `out`, default `path`) to its last step.

    The result is bit-identical to the uninterrupted run. corpus: the training file if it has
    moved since (its sha256 must match the record).
    """
    saved = load_checkpoint(path)
    record = saved.meta["training"]
    if record["finished"]:
        raise ValueError(f"{path} finished all {record['step']} steps of its run: nothing to "
                         "resume (start a new run to train longer)")
    settings = TrainConfig(**record["settings"])
    optimizer = _optimizer(settings)(saved.params)
    optimizer.load_state(saved.optimizer_arrays, saved.optimizer_t)
    text = train_corpus(corpus if corpus is not None else record["train_corpus"]["path"])
    if text.sha256 != record["train_corpus"]["sha256"]:
        raise ValueError(f"the training text {text.name!r} has sha256 {text.sha256[:12]}..., "
                         f"the checkpoint was trained on {record['train_corpus']['sha256'][:12]}"
                         "...: resume with the same --corpus file")
    record["resumed_with"] = [*record.get("resumed_with", []),
                              command or f"minilm.train.resume({str(path)!r})"]
    trainer = _Trainer(saved.config, settings, saved.params, optimizer, saved.rng, record,
                       corpus_bytes(text, settings.window(saved.config)), out or path)
    trainer.truncate_log()
    return trainer.run(progress, callback)


def _optimizer(settings: TrainConfig):
    return lambda params: AdamW(params, settings.beta1, settings.beta2,
                                weight_decay=settings.weight_decay, backend=settings.backend)


class _Trainer:
    """One run's state; `run` steps it to the end, evaluating and checkpointing on the way."""

    def __init__(self, config, settings, params, optimizer, rng, record, data, out):
        self.config, self.settings, self.params = config, settings, params
        self.optimizer, self.rng, self.record, self.data = optimizer, rng, record, data
        self.out = model_path(out)
        self.log_path = self.out.with_name(self.out.stem + ".log.jsonl")
        self.heldout = heldout_slice(settings.eval_bytes)[0]
        self.seq_len = settings.window(config)

    @property
    def step(self) -> int:
        return self.record["step"]

    def model(self) -> MiniLM:
        return MiniLM(self.config, self.params, {"training": self.record})

    def truncate_log(self) -> None:
        """Drop log lines written after the checkpoint (by a run killed without Ctrl-C)."""
        if self.log_path.is_file():
            lines = self.log_path.read_text().splitlines()
            kept = [line for line in lines if json.loads(line)["step"] <= self.step]
            self.log_path.write_text("".join(line + "\n" for line in kept))

    def save(self) -> None:
        save_checkpoint(self.out, self.config, self.params, {"training": self.record},
                        self.optimizer, self.rng)

    def train_step(self) -> dict:
        from .gradients import loss_and_grads

        s = self.settings
        started = time.perf_counter()
        inputs, targets = sample_batch(self.data, self.rng, s.batch_size, self.seq_len)
        with region(s.backend):  # the whole step, so BLAS threads never spin beside Numba's
            loss, grads = loss_and_grads(self.params, self.config, inputs, targets, s.backend)
            if not np.isfinite(loss):
                raise ValueError(f"the loss became {loss} at step {self.step + 1}: lower the "
                                 f"learning rate (lr={s.lr})")
            norm = clip_grad_norm(grads, s.grad_clip)
            lr = lr_at(self.step, s.steps, s.lr, s.warmup_steps, s.min_lr_ratio)
            self.optimizer.step(self.params, grads, lr)
        self.record["step"] += 1
        self.record["tokens_seen"] += inputs.size
        return {"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm,
                "tokens_per_s": inputs.size / (time.perf_counter() - started), "val_bpb": None}

    def run(self, progress: bool, callback) -> MiniLM:
        from tqdm.auto import tqdm

        from .evaluate import evaluate
        from .kernels.threads import tune_for_training

        tune_for_training()
        s, r = self.settings, self.record
        segment_start, wall_before = time.perf_counter(), r["wall_time_s"]
        bar = tqdm(total=s.steps, initial=self.step, unit="step", disable=not progress,
                   dynamic_ncols=True, desc=f"training ({s.backend})")
        with stop_on_interrupt() as stop, bar, self.log_path.open("a") as log:
            while self.step < s.steps:
                entry = self.train_step()
                if self.step == s.steps or (s.eval_every and self.step % s.eval_every == 0):
                    entry["val_bpb"] = r["heldout_bpb"] = evaluate(self.model(), self.heldout,
                                                                   s.backend)
                r["wall_time_s"] = wall_before + time.perf_counter() - segment_start
                entry["elapsed_s"] = r["wall_time_s"]
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{entry['loss']:.3f}", tok_s=f"{entry['tokens_per_s']:.0f}",
                                lr=f"{entry['lr']:.2e}", val_bpb=r["heldout_bpb"], refresh=False)
                if callback is not None:
                    callback(entry)
                if entry["val_bpb"] is not None and self.step < s.steps:
                    self.save()
                if stop.is_set():
                    self.save()
                    bar.write(f"interrupted after step {self.step}: checkpoint saved to "
                              f"{self.out}; continue with `minilm train --resume {self.out}`")
                    raise KeyboardInterrupt(f"training interrupted at step {self.step}")
        r["finished"], r["final_heldout_bpb"] = True, r["heldout_bpb"]
        self.save()
        return self.model()

