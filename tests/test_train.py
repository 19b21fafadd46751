"""Training: optimizer and schedule, a loss that falls, same seed same run, resuming exactly
(after Ctrl-C and after a crash), the checkpoint record, the CLI, and the error paths."""

import argparse
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import minilm
from minilm import ModelConfig
from minilm.corpus import sha256, validation_corpus
from minilm.optim import AdamW, clip_grad_norm, decays, global_norm, lr_at
from minilm.run_record import heldout_slice
from minilm.train import TrainConfig, resume, sample_batch, train
from minilm.train_cli import add_train_parser

TEXT = ("The quick brown fox jumps over the lazy dog. A function returns a value; a class "
        "holds methods and attributes. Return the number of items in the list.\n") * 40
CONFIG = ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=24)
SETTINGS = TrainConfig(steps=24, batch_size=4, lr=1e-2, eval_every=10, eval_bytes=600)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def run(tmp_path, corpus, name, settings=SETTINGS, **kwargs):
    return train(CONFIG, settings, tmp_path / f"{name}.npz", corpus, progress=False, **kwargs)


def same_params(a, b):
    return list(a.params) == list(b.params) and all(
        np.array_equal(a.params[n], b.params[n]) for n in a.params)


def log_of(path, timing=False):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return rows if timing else [{k: v for k, v in r.items()
                                 if k not in ("tokens_per_s", "elapsed_s")} for r in rows]


# ------------------------------------------------------------------ optimizer, schedule, data

def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 100, 1.0, warmup=10, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10], strict=True))
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1)


def test_adamw_decay_mask_and_step():
    assert decays("blocks.0.attn.w_qkv", np.zeros((2, 3)))
    for name, shape in [("tok_emb", (4, 2)), ("pos_emb", (4, 2)), ("ln_f.gamma", (2,)),
                        ("blocks.0.ffn.b1", (3,))]:
        assert not decays(name, np.zeros(shape))
    params = {"w": np.full((2, 2), 2.0, np.float32), "b": np.full(2, 2.0, np.float32)}
    optimizer = AdamW(params, weight_decay=0.5)
    optimizer.step(params, {"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)}, 0.1)
    assert np.allclose(params["w"], 2.0 * (1 - 0.1 * 0.5)) and np.all(params["b"] == 2.0)
    fresh = AdamW(params, weight_decay=0.5)
    fresh.step(params, {"w": np.zeros((2, 2), np.float32), "b": np.full(2, -3.0, np.float32)},
               0.1)
    assert np.allclose(params["b"], 2.0 + 0.1, atol=1e-6)  # Adam's first step: lr * -sign(g)


@pytest.mark.parametrize("shapes", [[(1,)], [(7, 3), (5,)], [(4097,), (64, 129)], [(3, 8193)]])
def test_fused_adamw_gives_the_references_bits(shapes):
    # the Numba kernel does the reference's float32 operations in the same order
    rng = np.random.default_rng(len(shapes))
    start = {f"w{i}" if len(s) == 2 else f"b{i}": rng.normal(size=s).astype(np.float32)
             for i, s in enumerate(shapes)}
    ref, fast = ({n: p.copy() for n, p in start.items()} for _ in range(2))
    ref_opt = AdamW(ref, weight_decay=0.3, backend="reference")
    fast_opt = AdamW(fast, weight_decay=0.3, backend="cpu")
    for step in range(4):
        grads = {n: rng.normal(scale=10.0 ** -step, size=p.shape).astype(np.float32)
                 for n, p in start.items()}
        ref_opt.step(ref, grads, 1e-2 / (step + 1))
        fast_opt.step(fast, grads, 1e-2 / (step + 1))
    for name in start:
        assert np.array_equal(fast[name], ref[name]), name
        assert np.array_equal(fast_opt.m[name], ref_opt.m[name])
        assert np.array_equal(fast_opt.v[name], ref_opt.v[name])


def test_fused_adamw_refuses_bad_arrays_and_backends():
    from minilm.kernels.adamw import adamw_update

    p = np.zeros((4, 4), np.float32)
    settings = dict(beta1=0.9, beta2=0.95, step_size=1e-3, correction2=0.05, eps=1e-8, decay=0)
    strided = np.zeros((4, 8), np.float32)[:, ::2]
    for bad, words in [(p.astype(np.float64), "float64"), (strided, "strided"),
                       (np.zeros((2, 8), np.float32), r"shape \(2, 8\)")]:
        with pytest.raises(ValueError, match=f"g .*{words}|g has {words}"):
            adamw_update(p, bad, np.zeros_like(p), np.zeros_like(p), **settings)
    with pytest.raises(ValueError, match="backend 'reference' or 'cpu'"):
        AdamW({"w": p}, backend="cuda")

def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-5)
    assert clip_grad_norm(grads, 10.0) == pytest.approx(1.0, rel=1e-5)


def test_batches_are_seeded_shifted_windows():
    data = np.arange(100, dtype=np.uint8)
    x, y = sample_batch(data, np.random.default_rng(5), 6, 10)
    x2, _ = sample_batch(data, np.random.default_rng(5), 6, 10)
    assert x.shape == y.shape == (6, 10) and x.dtype == np.int64
    assert np.array_equal(x, x2) and np.array_equal(y[:, :-1], x[:, 1:])
    assert np.all(np.diff(x, axis=1) == 1)  # contiguous windows of the text


# ------------------------------------------------------------------------ runs and resuming

def test_loss_falls_and_the_record_is_complete(tmp_path, corpus):
    losses = []
    model = run(tmp_path, corpus, "a", TrainConfig(steps=40, batch_size=8, lr=1e-2,
                                                   eval_every=20, eval_bytes=600),
                callback=lambda entry: losses.append(entry["loss"]))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
    loaded = minilm.load(tmp_path / "a.npz")
    assert loaded.config == CONFIG and same_params(loaded, model)
    record = loaded.meta["training"]
    assert record["finished"] and record["step"] == 40 and record["settings"]["seed"] == 0
    assert record["command"].startswith("minilm.train.train(")
    assert record["train_corpus"]["sha256"] == sha256(TEXT)
    piece, where = heldout_slice(600)
    assert record["heldout"] == where
    assert where["sha256"] == validation_corpus().sha256
    assert record["final_heldout_bpb"] == minilm.evaluate(loaded, piece)
    assert record["wall_time_s"] > 0 and record["tokens_seen"] == 40 * 8 * 24
    log = log_of(tmp_path / "a.log.jsonl", timing=True)
    assert [r["step"] for r in log] == list(range(1, 41))
    assert [r["val_bpb"] is not None for r in log].count(True) == 2
    assert set(log[0]) == {"step", "loss", "lr", "grad_norm", "tokens_per_s", "val_bpb",
                           "elapsed_s"}


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_same_seed_same_run(tmp_path, corpus, backend):
    settings = TrainConfig(steps=6, batch_size=3, lr=1e-2, eval_every=0, eval_bytes=100,
                           backend=backend)
    a, b = run(tmp_path, corpus, "a", settings), run(tmp_path, corpus, "b", settings)
    assert same_params(a, b)
    c = run(tmp_path, corpus, "c", TrainConfig(**{**settings.__dict__, "seed": 1}))
    assert not same_params(a, c)


def test_ctrl_c_saves_and_resume_equals_the_uninterrupted_run(tmp_path, corpus):
    whole = run(tmp_path, corpus, "whole")

    def interrupt_at_13(entry):
        if entry["step"] == 13:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, corpus, "cut", callback=interrupt_at_13)
    saved = minilm.load(tmp_path / "cut.npz")
    assert saved.meta["training"]["step"] == 13 and not saved.meta["training"]["finished"]
    resumed = resume(tmp_path / "cut.npz", progress=False)
    assert same_params(resumed, whole)
    assert resumed.meta["training"]["final_heldout_bpb"] == \
        whole.meta["training"]["final_heldout_bpb"]
    assert log_of(tmp_path / "cut.log.jsonl") == log_of(tmp_path / "whole.log.jsonl")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_after_a_crash_uses_the_last_checkpoint(tmp_path, corpus):
    whole = run(tmp_path, corpus, "whole")

    def crash_at_17(entry):
        if entry["step"] == 17:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        run(tmp_path, corpus, "crash", callback=crash_at_17)
    assert minilm.load(tmp_path / "crash.npz").meta["training"]["step"] == 10  # eval_every
    resumed = resume(tmp_path / "crash.npz", out=tmp_path / "more.npz", progress=False)
    assert same_params(resumed, whole)
    assert [r["step"] for r in log_of(tmp_path / "crash.log.jsonl")] == list(range(1, 18))
    assert resumed.meta["training"]["resumed_with"] == [
        f"minilm.train.resume({str(tmp_path / 'crash.npz')!r})"]


# ---------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("content, message", [
    (b"", "is empty"), (b"too short", "too short for training windows"),
    (b"caf\xe9 latin-1", "is not UTF-8 text"),
])
def test_bad_corpus(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        run(tmp_path, path, "x")


def test_bad_settings(tmp_path, corpus):
    with pytest.raises(ValueError, match="seq_len=25 is longer than the model's max_seq_len=24"):
        run(tmp_path, corpus, "x", TrainConfig(steps=2, seq_len=25))
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        run(tmp_path, tmp_path / "missing.txt", "x")
    for field, value in [("steps", 0), ("lr", 0.0), ("batch_size", 1.5), ("backend", "cuda"),
                         ("beta2", 1.0), ("eval_bytes", 1)]:
        with pytest.raises(ValueError, match=field):
            TrainConfig(**{"steps": 5, field: value})
    with pytest.raises(TypeError, match="ModelConfig and a TrainConfig"):
        train(CONFIG, {"steps": 3}, tmp_path / "x.npz")


def test_bad_resume(tmp_path, corpus):
    finished = run(tmp_path, corpus, "done", TrainConfig(steps=2, batch_size=2, eval_bytes=100))
    with pytest.raises(ValueError, match="nothing to resume"):
        resume(tmp_path / "done.npz")
    finished.meta = {}
    finished.save(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        resume(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="trained on"):  # a different training text
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, corpus, "cut", callback=lambda e: signal.raise_signal(signal.SIGINT))
        other = tmp_path / "other.txt"
        other.write_text(TEXT.upper())
        resume(tmp_path / "cut.npz", corpus=other)


# ----------------------------------------------------------------------------------------- CLI

def parse(*argv):
    parser = argparse.ArgumentParser(prog="minilm")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["train", *argv])


def test_cli_trains_and_records_its_command(tmp_path, corpus, capsys):
    argv = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--max-seq-len", "16",
            "--steps", "3", "--batch-size", "2", "--eval-bytes", "200", "--corpus", str(corpus),
            "--out", str(tmp_path / "cli.npz"), "--no-progress"]
    args = parse(*argv)
    assert args.run(args) == 0
    assert "3 steps" in capsys.readouterr().out
    record = minilm.load(tmp_path / "cli.npz").meta["training"]
    replayed = parse(*record["command"].split()[2:], "--no-progress")
    assert {k: v for k, v in vars(replayed).items() if k != "run"} == \
        {k: v for k, v in vars(args).items() if k != "run"}
    assert record["settings"]["steps"] == 3 and minilm.load(tmp_path / "cli.npz").config.d_ff == 64


@pytest.mark.parametrize("argv, message", [
    (["--preset", "minilm-s", "--d-model", "8", "--out", "x"], "drop --d-model"),
    (["--preset", "minilm-q", "--out", "x"], "unknown preset 'minilm-q'"),
    (["--d-model", "16", "--out", "x"], "missing --n-heads, --n-layers, --steps"),
    (["--preset", "minilm-s"], "--out PATH is required"),
    (["--resume", "x.npz", "--steps", "9"], "drop --steps"),
    (["--d-model", "10", "--n-heads", "3", "--n-layers", "1", "--steps", "2", "--out", "x"],
     "multiple of n_heads"),
])
def test_cli_errors(argv, message):
    args = parse(*argv)
    with pytest.raises(ValueError, match=message):
        args.run(args)


@pytest.mark.parametrize("given, expected", [(None, "passive"), ("active", "active")])
def test_training_asks_for_passive_openmp_threads_unless_the_user_chose(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os; from minilm.kernels.threads import tune_for_training; "
            "tune_for_training(); print(os.environ['OMP_WAIT_POLICY'])")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == expected
