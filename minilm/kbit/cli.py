"""`minilm quantize MODEL --bits K --dtype nf --block-size 64 -o OUT` (chapter 10).

Prints the size, bits per parameter and held-out bits/byte before and after quantization.
"""

from __future__ import annotations

import argparse
import os

EVAL_BYTES = 32_768  # a fixed slice of the held-out text: quick, and the same for every run


def _block_size(text: str):
    return None if text.lower() in ("none", "tensor") else int(text)


def add_quantize_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quantize", help="quantize a model's weights to k bits and save it",
        description="Quantize every linear weight of MODEL blockwise to k bits and save the "
                    "packed model; prints size, bits/param and held-out bits/byte before/after.")
    parser.add_argument("model", help="shipped model name or .npz path")
    parser.add_argument("--bits", type=int, default=4, help="bits per weight, 2..8 (default 4)")
    parser.add_argument("--dtype", choices=("int", "fp", "nf"), default="nf")
    parser.add_argument("--block-size", type=_block_size, default=64, metavar="N",
                        help="values per absmax scale, or 'none' for one per tensor")
    parser.add_argument("--embeddings", action="store_true",
                        help="also quantize the embedding tables (tied LM head)")
    parser.add_argument("-o", "--out", required=True, help="output .npz path")
    parser.add_argument("--eval-bytes", type=int, default=EVAL_BYTES, metavar="N",
                        help=f"held-out bytes to evaluate on (default {EVAL_BYTES}; 0: skip)")
    parser.add_argument("--backend", choices=("reference", "cpu"), default="cpu")
    parser.set_defaults(run=cmd_quantize)
    return parser


def _describe(label, model, path, bpb):
    from .model import total_bits

    bits = total_bits(model)
    size = f"file {os.path.getsize(path) / 1e6:.3f} MB" if path else "in memory"
    quality = f", {bpb:.4f} bits/byte held out" if bpb is not None else ""
    print(f"{label:>9}: {bits / 8e6:.3f} MB of weights ({size}), "
          f"{bits / model.n_params:.2f} bits/param{quality}")


def cmd_quantize(args) -> int:
    import minilm

    from ..corpus import validation_corpus
    from .model import quantize_model

    if args.eval_bytes < 0:
        raise ValueError(f"--eval-bytes must be >= 0, got {args.eval_bytes}")
    model = minilm.load(args.model)
    quantized = quantize_model(model, bits=args.bits, dtype=args.dtype,
                               block_size=args.block_size, embeddings=args.embeddings)
    out = quantized.save(args.out)
    text = validation_corpus().text.encode("utf-8")[:args.eval_bytes]
    before = after = None
    if len(text) >= 2:
        before = minilm.evaluate(model, text, backend=args.backend)
        after = minilm.evaluate(quantized, text, backend=args.backend)
    source = args.model if os.path.isfile(args.model) else None
    _describe("float32", model, source, before)
    _describe(f"{args.bits}-bit {args.dtype}", quantized, out, after)
    print(f"saved {out}")
    return 0
