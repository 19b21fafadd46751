"""The `minilm train`, `minilm baselines` and `minilm models` commands (registered by `minilm.cli`).

Taught in chapter 6 (training). Nothing heavy is imported until a command runs, so
`minilm --help` stays fast. Bad arguments raise ValueError/TypeError with a clear message,
which `minilm.cli.main` prints as one line.

    minilm train --preset minilm-s --out runs/s.npz
    minilm train --d-model 64 --n-heads 2 --n-layers 2 --steps 500 --out runs/tiny.npz
    minilm train --resume runs/s.npz          # continue an interrupted run, bit-identically
    minilm baselines --models runs/s.npz      # unigram and 4-gram bits/byte beside the model
    minilm models                             # the shipped family and how each was made
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex

MODEL_OPTIONS = [  # (flag, type, ModelConfig field, help)
    ("--d-model", int, "d_model", "C: width of the residual stream"),
    ("--n-heads", int, "n_heads", "H: attention heads (d_model must be a multiple)"),
    ("--n-layers", int, "n_layers", "Transformer blocks"),
    ("--d-ff", int, "d_ff", "F: feed-forward width (default 4 * d_model)"),
    ("--max-seq-len", int, "max_seq_len", "longest context (default 256)"),
]
TRAIN_OPTIONS = [  # (flag, type, TrainConfig field, help)
    ("--steps", int, "steps", "optimizer steps of the whole run"),
    ("--batch-size", int, "batch_size", "B: windows per step (default 16)"),
    ("--lr", float, "lr", "peak learning rate (default 1e-3)"),
    ("--seq-len", int, "seq_len", "T: window length (default max-seq-len)"),
    ("--warmup", int, "warmup", "warm-up steps (default 5%% of the steps)"),
    ("--weight-decay", float, "weight_decay", "AdamW decay of weight matrices (default 0.1)"),
    ("--grad-clip", float, "grad_clip", "clip the global gradient norm (default 1.0)"),
    ("--seed", int, "seed", "initial weights and window order (default 0)"),
    ("--eval-every", int, "eval_every", "evaluate + checkpoint every N steps (default 250)"),
    ("--eval-bytes", int, "eval_bytes", "held-out slice: its first N bytes (default 65536)"),
    ("--backend", str, "backend", "cpu (Numba, default) or reference (NumPy)"),
]
RUN_OPTIONS = [  # (flag, type, argument name, help)
    ("--preset", str, "preset", "a family member (minilm-xs, -s, -m, -l, -xl): shape and "
                                "training recipe"),
    ("--corpus", str, "corpus", "UTF-8 training text (default: the standard library's "
                                "docstrings)"),
    ("--resume", str, "resume", "continue the run saved in this checkpoint, exactly"),
    ("--out", str, "out", "where to save the model (.npz; beside it .state.npz, .log.jsonl)"),
]


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register `minilm train` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "train", help="train a model on a text corpus (NumPy + Numba, no framework)",
        description="Train a minilm model. Give --preset NAME or the model's shape "
                    "(--d-model, --n-heads, --n-layers and --steps at least). Ctrl-C saves a "
                    "checkpoint; --resume continues it exactly.")
    for flag, kind, dest, text in RUN_OPTIONS:
        parser.add_argument(flag, type=kind, dest=dest, help=text,
                            metavar="NAME" if dest == "preset" else "PATH")
    shape = parser.add_argument_group("model shape (instead of --preset)")
    for flag, kind, dest, text in MODEL_OPTIONS:
        shape.add_argument(flag, type=kind, dest=dest, metavar="N", help=text)
    training = parser.add_argument_group("training (defaults: the preset's recipe)")
    for flag, kind, dest, text in TRAIN_OPTIONS:
        training.add_argument(flag, type=kind, dest=dest, help=text,
                              metavar="NAME" if kind is str else "N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=cmd_train)
    return parser


def command_line(args) -> str:
    """The `minilm train ...` command that reproduces these parsed arguments exactly."""
    words = ["minilm", "train"]
    for flag, _, dest, _ in RUN_OPTIONS + MODEL_OPTIONS + TRAIN_OPTIONS:
        if getattr(args, dest) is not None:
            words += [flag, str(getattr(args, dest))]
    return shlex.join(words)


def configs_from_args(args):
    """(ModelConfig, TrainConfig) from a preset and/or explicit options."""
    from .config import ModelConfig
    from .family import recipe
    from .train import TrainConfig

    shape = {dest: getattr(args, dest) for _, _, dest, _ in MODEL_OPTIONS
             if getattr(args, dest) is not None}
    if args.preset is not None:
        if shape:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in shape)
            raise ValueError(f"--preset {args.preset} fixes the model's shape; drop {flags}")
        model, settings = recipe(args.preset)
    else:
        missing = [flag for flag, _, dest, _ in MODEL_OPTIONS[:3] + TRAIN_OPTIONS[:1]
                   if getattr(args, dest) is None]
        if missing:
            raise ValueError(f"give --preset NAME, or the model's shape and length: missing "
                             f"{', '.join(missing)}")
        shape.setdefault("d_ff", 4 * shape["d_model"])
        model, settings = ModelConfig(**shape), TrainConfig(steps=args.steps)
    overrides = {dest: getattr(args, dest) for _, _, dest, _ in TRAIN_OPTIONS
                 if getattr(args, dest) is not None}
    return model, dataclasses.replace(settings, **overrides)


def cmd_train(args) -> int:
    """Train (or resume) and print where the model went and how good it is."""
    from .train import resume, train

    progress = not args.no_progress
    if args.resume is not None:
        given = [flag for flag, _, dest, _ in MODEL_OPTIONS + TRAIN_OPTIONS + RUN_OPTIONS[:1]
                 if getattr(args, dest) is not None]
        if given:
            raise ValueError(f"--resume continues the saved run with its saved settings; "
                             f"drop {', '.join(given)}")
        model = resume(args.resume, out=args.out, corpus=args.corpus, progress=progress,
                       command=command_line(args))
    else:
        if args.out is None:
            raise ValueError("--out PATH is required: where to save the trained model")
        config, settings = configs_from_args(args)
        model = train(config, settings, args.out, args.corpus, progress=progress,
                      command=command_line(args))
    record = model.meta["training"]
    print(f"{args.out or args.resume}: {model.n_params:,} parameters, {record['step']} steps, "
          f"{record['wall_time_s'] / 60:.1f} min; held-out {record['final_heldout_bpb']:.4f} "
          f"bits/byte on the first {record['heldout']['n_bytes']:,} bytes of "
          f"{record['heldout']['name']}")
    return 0


def add_baselines_parser(subparsers) -> argparse.ArgumentParser:
    """Register `minilm baselines` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "baselines", help="bits/byte of byte unigram and n-gram models (and of given models)",
        description="Train a byte unigram and a modified Kneser-Ney byte n-gram model on the "
                    "training text and score them on the held-out text, beside any models.")
    parser.add_argument("--corpus", metavar="PATH",
                        help="UTF-8 training text (default: the standard library's docstrings)")
    parser.add_argument("--eval-bytes", type=int, metavar="N",
                        help="score only the first N held-out bytes (default: all of them)")
    parser.add_argument("--order", type=int, default=4, metavar="N",
                        help="n-gram order (default 4: three bytes of context)")
    parser.add_argument("--models", nargs="*", default=[], metavar="MODEL",
                        help="shipped model names or .npz paths to score on the same text")
    parser.set_defaults(run=cmd_baselines)
    return parser


def cmd_baselines(args) -> int:
    """Print the baselines' (and the models') bits/byte on the held-out text."""
    from . import load
    from .baselines import baselines
    from .corpus import train_corpus, validation_corpus
    from .evaluate import evaluate
    from .run_record import heldout_slice

    if args.eval_bytes is not None and args.eval_bytes < 2:
        raise ValueError(f"--eval-bytes must be >= 2, got {args.eval_bytes}")
    text = train_corpus(args.corpus)
    heldout = validation_corpus()
    data = heldout_slice(args.eval_bytes or heldout.n_bytes)[0]
    print(f"training text: {text.name}, {text.n_bytes:,} bytes, sha256 {text.sha256[:16]}...")
    print(f"held-out text: {heldout.name}, first {len(data):,} of {heldout.n_bytes:,} bytes, "
          f"sha256 {heldout.sha256[:16]}...")
    rows = baselines(text.text, data, args.order)
    names = {"unigram": "byte unigram (add-one)",
             f"{args.order}-gram": f"byte {args.order}-gram (modified Kneser-Ney)"}
    table = [(names[key], bpb) for key, bpb in rows.items()]
    table += [(name, evaluate(load(name), data)) for name in args.models]
    width = max(len(name) for name, _ in table)
    print(f"{'model':<{width}}  bits/byte")
    for name, bpb in table:
        print(f"{name:<{width}}  {bpb:9.4f}")
    return 0


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    """Register `minilm models` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "models", help="the shipped checkpoints: size, training record, held-out bits/byte",
        description="List the trained checkpoints that ship with minilm (smallest first), "
                    "with the record each carries: steps, wall time, held-out bits/byte and "
                    "the command that made it.")
    parser.add_argument("--commands", action="store_true",
                        help="also print the exact training command of each model")
    parser.set_defaults(run=cmd_models)
    return parser


def cmd_models(args) -> int:
    """Print the shipped family as a table."""
    from .family import shipped_table

    rows = shipped_table()
    if not rows:
        print("no trained checkpoints ship in this installation")
        return 0
    print(f"{'name':<10} {'params':>10}  {'shape':<30} {'steps':>5} {'tokens':>10} "
          f"{'minutes':>7} {'held-out bpb':>12} {'MB':>5}")
    for r in rows:
        print(f"{r['name']:<10} {r['params']:>10,}  {r['shape']:<30} {r['steps']:>5} "
              f"{r['tokens']:>10,} {r['minutes']:>7.1f} {r['heldout_bpb']:>12.4f} {r['mb']:>5.1f}")
    if args.commands:
        for r in rows:
            print(f"{r['name']}: {r['command']}")
    print(f"training text sha256: {rows[0]['corpus_sha256']}")
    return 0
