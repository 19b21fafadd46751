"""Chapter 10 (k-bit inference scaling laws): the sweep's table, a budget -> best k widget, and
our result beside the paper's.

    rows = results()                         # the `minilm scaling` table if there is one, else
                                             # a small sweep of the smallest shipped models
    fig = budget_figure(rows, log2_budget=20)   # the scaling figure, the budget, its best cell
    print(describe_budget(rows, 2**20))
    print(paper_comparison(rows))            # each finding of the paper, and ours
    budget_panel(rows)                       # slider: total-bits budget

Everything about the experiment (cells, cache, Pareto front, figures) is `minilm.scaling` and
`minilm.scaling_plots`; this module only chooses what to show.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import scaling
from ..corpus import cache_dir
from ..scaling_plots import best_k_for_budget, format_bits, pareto_front, scaling_figure
from .caption import caption
from .common import float_slider, panel

# A sweep small enough to run inside the chapter when no `minilm scaling` table is found.
LIVE_PLAN = scaling.Plan(bits=(3, 4, 5, 6, 8), dtypes=("int", "nf"), block_sizes=(None, 64),
                         n_bytes=4096)
LIVE_MODELS = 3  # the smallest shipped models the live sweep covers
TABLE = Path("runs/scaling/table.json")  # where `minilm scaling` writes its table by default


def results(table=None, models=None, plan: scaling.Plan = LIVE_PLAN) -> list[dict]:
    """The rows of a `minilm scaling` table.json (`table`, default runs/scaling/table.json from
    the repository root or the course folder) if it exists; otherwise `scaling.sweep` over
    `models` (default: the LIVE_MODELS smallest shipped models) with `plan`, cached under
    $MINILM_CACHE so that a second run computes nothing."""
    candidates = [Path(table)] if table is not None else [TABLE, Path("..") / TABLE]
    for path in candidates:
        if path.is_file():
            return scaling.read_table(path)
    if table is not None:
        raise FileNotFoundError(f"no scaling table at {table}; run `minilm scaling` first")
    from ..model import available_models

    models = models or available_models()[:LIVE_MODELS]
    return scaling.sweep(models, plan=plan, cache=cache_dir() / "chapter10_scaling.jsonl",
                         progress=False)


def budget_range(rows) -> tuple[float, float]:
    """log2 of the smallest and the largest total bits in the table."""
    bits = [r["total_bits"] for r in rows if r.get("bpb") is not None]
    return math.log2(min(bits)), math.log2(max(bits))


def describe_budget(rows, budget_bits: float) -> str:
    """The best cell within the budget, in words."""
    try:
        best = best_k_for_budget(rows, budget_bits)
    except ValueError as error:
        return str(error)
    return (f"budget {format_bits(budget_bits)}: best is k = {best['bits']} "
            f"({best['format']}) of {best['model']}, {format_bits(best['total_bits'])}, "
            f"{best['bpb']:.4f} bits/byte")


def budget_figure(rows, log2_budget: float, dtype: str = "nf", block_size: int | None = 64):
    """`scaling_plots.scaling_figure` with the budget as a vertical line and the best cell that
    fits circled."""
    budget = 2.0**log2_budget
    fig = scaling_figure(rows, dtype, block_size)
    ax = fig.axes[0]
    ax.axvline(budget, color="tab:red", ls="--", lw=1)
    try:
        best = best_k_for_budget(rows, budget)
        ax.plot([best["total_bits"]], [best["bpb"]], "o", ms=16, mfc="none", mec="tab:red",
                mew=2, label=f"best within budget: k = {best['bits']}")
        ax.legend(fontsize=8)
    except ValueError:
        pass  # nothing fits: the line alone shows it
    return fig


def budget_panel(rows):
    """A log2(total bits) slider over `budget_figure` and `describe_budget`."""
    low, high = budget_range(rows)
    return panel(lambda log2_budget: (budget_figure(rows, log2_budget),
                                      caption(describe_budget(rows, 2.0**log2_budget))),
                 {"log2_budget": float_slider("log2(total bits)", round(low, 1),
                                              round(high, 1) + 0.1, round((low + high) / 2, 1),
                                              0.1)})


def _mean_gap(rows, better: dict, worse: dict, match=("model", "bits")) -> float | None:
    """Mean of bpb(worse cell) - bpb(better cell) over pairs of cells that agree on `match`."""
    def pick(spec):
        return {tuple(r[key] for key in match): r["bpb"] for r in rows
                if r.get("bpb") is not None and all(r[key] == v for key, v in spec.items())}

    good, bad = pick(better), pick(worse)
    gaps = [bad[key] - good[key] for key in good if key in bad]
    return sum(gaps) / len(gaps) if gaps else None


def paper_comparison(rows) -> str:
    """The paper's main findings, each beside what this table shows."""
    scored = [r for r in rows if r.get("bpb") is not None]
    front = pareto_front(scored)
    on_front = sorted({r["bits"] for r in front})
    fours = sum(r["bits"] == 4 for r in front)
    blocks = _mean_gap(scored, {"dtype": "nf", "block_size": 64},
                       {"dtype": "nf", "block_size": None})
    types = _mean_gap(scored, {"dtype": "nf", "block_size": 64},
                      {"dtype": "int", "block_size": 64})
    eight = _mean_gap(scored, {"dtype": "float", "bits": 32},
                      {"dtype": "nf", "bits": 8, "block_size": 64}, match=("model",))

    def gap(value, what):
        return "not in this table" if value is None else f"{what}: {value:+.4f} bits/byte"

    findings = [
        ("4-bit is almost always the best use of a fixed total-bits budget",
         f"k on our Pareto front: {on_front}; {fours} of its {len(front)} cells are 4-bit"),
        ("small blocks help: block 64 beats one scale per tensor",
         gap(blocks, "per tensor minus block 64 (nf), mean over models and k")),
        ("float / quantile data types beat int",
         gap(types, "int minus nf (block 64), mean over models and k")),
        ("8 bits are practically lossless",
         gap(eight, "nf8 (block 64) minus float32, mean over models")),
    ]
    models = sorted({(r["n_params"], r["model"]) for r in scored})
    header = (f"Dettmers & Zettlemoyer (2022): 35,000+ zero-shot experiments, 19M-176B "
              f"parameters, 3-8 bits. Ours: {len(models)} models, {models[0][0]:,}-"
              f"{models[-1][0]:,} parameters, {len(scored)} cells, held-out bits/byte.")
    return "\n".join([header] + [f"- paper: {claim}\n  ours:  {ours}" for claim, ours in findings])
