"""The `minilm scaling` command (registered by `minilm.cli`): run the k-bit scaling-law sweep,
write its table and figures, and print the verdict (chapter 10).

    minilm scaling                          # full sweep over the shipped family -> runs/scaling
    minilm scaling --quick                  # fewer cells on a smaller slice, in about a minute
    minilm scaling --models a.npz b.npz --out runs/mine --workers 2

A re-run with the same --out reuses every cell in OUT/cache.jsonl and computes only the rest.
"""

from __future__ import annotations

import argparse
import time


def add_scaling_parser(subparsers) -> argparse.ArgumentParser:
    """Register `minilm scaling` on an argparse subparsers object."""
    from .scaling import FULL, QUICK

    def describe(plan) -> str:
        blocks = ", ".join("tensor" if b is None else str(b) for b in plan.block_sizes)
        return (f"k in {{{', '.join(map(str, plan.bits))}}} x {{{', '.join(plan.dtypes)}}} x "
                f"blocks {{{blocks}}} + float16/32, on {plan.n_bytes:,} held-out bytes")

    parser = subparsers.add_parser(
        "scaling", help="the k-bit inference scaling-law sweep: table, figures, verdict",
        description="Evaluate every model stored at every precision (full: "
                    f"{describe(FULL)}; --quick: {describe(QUICK)}), write OUT/table.csv, "
                    "OUT/table.json, OUT/scaling.png and OUT/effects.png, and print the best k "
                    "for each total-bits budget.")
    parser.add_argument("--quick", action="store_true", help="fewer cells, smaller slice")
    parser.add_argument("--out", default="runs/scaling", metavar="DIR",
                        help="output folder, also holding the cache (default runs/scaling)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="shipped model names or .npz paths (default: every shipped model)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: one per core)")
    parser.add_argument("--float-embeddings", action="store_true",
                        help="keep tok_emb and pos_emb float32 in every cell (default: "
                             "quantize them like the linear weights)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=cmd_scaling)
    return parser


def cmd_scaling(args) -> int:
    """Sweep (reusing the cache), write table + figures, print summary and verdict."""
    import dataclasses
    from pathlib import Path

    from .scaling import FULL, QUICK, sweep, write_table
    from .scaling_plots import format_verdict, save_figures, summary

    plan = dataclasses.replace(QUICK if args.quick else FULL,
                               embeddings=not args.float_embeddings)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, but {out} is a file")
    started = time.perf_counter()
    rows = sweep(args.models, plan, cache=out / "cache.jsonl", workers=args.workers,
                 progress=not args.no_progress)
    wall = time.perf_counter() - started
    paths = [*write_table(rows, out), *save_figures(rows, out)]
    first = rows[0]
    print(f"{len(rows)} cells ({len({r['model'] for r in rows})} models) on the first "
          f"{first['n_bytes']:,} bytes of {first['corpus']} (sha256 "
          f"{first['corpus_sha256'][:12]}...), {wall:.1f} s")
    print(summary(rows))
    print(format_verdict(rows))
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0
