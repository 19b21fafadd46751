"""Reading the k-bit scaling-law table: Pareto front, best k for a budget, verdict, figures.

Taught in chapter 10. Every function takes the rows that `minilm.scaling.sweep` returns (or
`scaling.read_table` reads back) and returns data, text or a matplotlib `Figure`, without
pyplot, so that they run headless and the chapter's widget (a total-bits budget -> best k)
can call them:

    front = pareto_front(rows)                    # the cells no cheaper cell beats
    row = best_k_for_budget(rows, 2**20)          # best cell within 1 Mbit; row["bits"] is k
    print(format_verdict(rows))                   # best k for each power-of-two budget
    fig = scaling_figure(rows)                    # bits/byte vs total bits, one curve per k
    fig = effect_figure(rows, bits=(3, 4))        # data-type and block-size effects
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from .scaling import FLOAT


def _scored(rows) -> list[dict]:
    scored = [row for row in rows if row.get("bpb") is not None]
    if not scored:
        raise ValueError("the table has no evaluated rows; run scaling.sweep first")
    return scored


def pareto_front(rows) -> list[dict]:
    """The rows that no row with as many or fewer total bits beats on bits/byte, cheapest
    first: the best achievable bits/byte as the memory budget grows."""
    front, best = [], math.inf
    for row in sorted(_scored(rows), key=lambda r: (r["total_bits"], r["bpb"])):
        if row["bpb"] < best:
            front.append(row)
            best = row["bpb"]
    return front


def best_k_for_budget(rows, budget_bits) -> dict:
    """The row with the lowest bits/byte among those that fit in `budget_bits` total bits;
    its "bits" is the best k (16/32 for the float baselines), "model" and "format" say the rest.
    """
    if isinstance(budget_bits, bool) or not isinstance(budget_bits, (int, float)) \
            or not budget_bits > 0:
        raise ValueError(f"budget_bits must be a positive number, got {budget_bits!r}")
    fitting = [row for row in _scored(rows) if row["total_bits"] <= budget_bits]
    if not fitting:
        smallest = min(row["total_bits"] for row in _scored(rows))
        raise ValueError(f"no cell fits in {format_bits(budget_bits)}; the smallest needs "
                         f"{format_bits(smallest)}")
    return min(fitting, key=lambda row: (row["bpb"], row["total_bits"]))


def budgets(rows) -> list[int]:
    """Powers of two from the smallest cell's total bits up to the largest cell's."""
    bits = [row["total_bits"] for row in _scored(rows)]
    low, high = math.ceil(math.log2(min(bits))), math.ceil(math.log2(max(bits)))
    return [2**e for e in range(low, high + 1)]


def format_bits(bits) -> str:
    """1234567 -> "1.23 Mbit"."""
    for scale, unit in ((1e9, "Gbit"), (1e6, "Mbit"), (1e3, "kbit")):
        if bits >= scale:
            return f"{bits / scale:.3g} {unit}"
    return f"{bits:.0f} bit"


def format_verdict(rows) -> str:
    """For each power-of-two budget: the best cell that fits, and how often each k is on the
    Pareto front."""
    scored = _scored(rows)
    lines = [f"Verdict: the best cell for each total-bits budget ({len(scored)} cells)",
             f"  {'budget':>12}  {'k':>2}  {'format':<12} {'model':<12} {'total bits':>10}  "
             "bits/byte"]
    for budget in budgets(scored):
        row = best_k_for_budget(scored, budget)
        lines.append(f"  <= {format_bits(budget):>9}  {row['bits']:>2}  {row['format']:<12} "
                     f"{row['model']:<12} {format_bits(row['total_bits']):>10}  "
                     f"{row['bpb']:.4f}")
    front = pareto_front(scored)
    counts = Counter(row["bits"] for row in front).most_common()
    lines.append(f"Pareto front: {len(front)} cells; k on it: "
                 + ", ".join(f"{k} ({n}x)" for k, n in counts))
    return "\n".join(lines)


def summary(rows, dtype: str = "nf", block_size: int | None = 64) -> str:
    """bits/byte of every model (rows) at every k (columns) for one data type and block size,
    with the float baselines."""
    scored = _scored(rows)
    cells = {(r["model"], r["bits"]): r["bpb"] for r in scored
             if r["dtype"] == FLOAT or (r["dtype"] == dtype and r["block_size"] == block_size)}
    models = list(dict.fromkeys(r["model"] for r in scored))
    ks = sorted({k for _, k in cells}, reverse=True)
    block = "per tensor" if block_size is None else f"block {block_size}"
    lines = [f"held-out bits/byte ({dtype}, {block}; 32 and 16: float)",
             f"{'model':<12}" + "".join(f"{f'k={k}':>8}" for k in ks)]
    for model in models:
        values = (cells.get((model, k)) for k in ks)
        lines.append(f"{model:<12}" + "".join(f"{v:8.4f}" if v is not None else f"{'-':>8}"
                                              for v in values))
    return "\n".join(lines)


def _pick(rows, key: str, preferred):
    """`preferred` if some row has it, else the most common value of `key` (non-float rows)."""
    values = [row[key] for row in rows if row["dtype"] != FLOAT]
    if not values:
        raise ValueError("the table has no k-bit rows, only float baselines")
    return preferred if preferred in values else Counter(values).most_common(1)[0][0]


def _curve_label(k, dtype, block_size) -> str:
    if dtype == FLOAT:
        return f"float{k}"
    return f"k = {k} ({dtype}, {'per tensor' if block_size is None else f'block {block_size}'})"


def _log_bits_axis(ax, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("total model bits (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def scaling_figure(rows, dtype: str = "nf", block_size: int | None = 64):
    """bits/byte vs total model bits, one curve per k through the models (the shape of Figure 1
    of Dettmers & Zettlemoyer), for one data type and block size, with the Pareto front of all
    cells as a step line. Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    scored = _scored(rows)
    dtype = _pick(scored, "dtype", dtype)
    block_size = _pick([r for r in scored if r["dtype"] in (dtype, FLOAT)], "block_size",
                       block_size)
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ks = sorted({r["bits"] for r in scored}, reverse=True)
    shown = [r for r in scored
             if r["dtype"] == FLOAT or (r["dtype"] == dtype and r["block_size"] == block_size)]
    for k, color in zip(ks, _colors(len(ks)), strict=True):
        curve = sorted((r for r in shown if r["bits"] == k), key=lambda r: r["total_bits"])
        if curve:
            kind = FLOAT if curve[0]["dtype"] == FLOAT else dtype
            ax.plot([r["total_bits"] for r in curve], [r["bpb"] for r in curve], marker="o",
                    color=color, label=_curve_label(k, kind, block_size),
                    linestyle="--" if kind == FLOAT else "-")
    front = pareto_front(scored)
    ax.step([r["total_bits"] for r in front], [r["bpb"] for r in front], where="post",
            color="black", linewidth=1, alpha=0.6, label="Pareto front (all cells)")
    for row in (r for r in scored if r["dtype"] == FLOAT and r["bits"] == 32):
        ax.annotate(row["model"], (row["total_bits"], row["bpb"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    low, high = min(r["bpb"] for r in scored), max(r["bpb"] for r in shown)
    pad = 0.05 * (high - low) + 1e-3  # y: every cell's best to the curves' worst; the front
    # may start higher (a 3-bit per-tensor model near 8 bits/byte), off the plot
    ax.set_ylim(low - pad, high + pad)
    _log_bits_axis(ax, "held-out bits/byte (lower is better)")
    ax.set_title("k-bit inference scaling: quality at a fixed memory budget")
    ax.legend(fontsize=8)
    return fig


def effect_figure(rows, bits=(3, 4), dtype: str = "nf", block_size: int | None = 64):
    """The data-type effect (top row, at `block_size`) and the block-size effect (bottom row,
    for `dtype`) at each k in `bits` (columns): bits/byte above the same model's float32, vs
    total model bits. Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    scored = _scored(rows)
    bits = [k for k in bits if any(r["bits"] == k and r["dtype"] != FLOAT for r in scored)]
    if not bits:
        raise ValueError("none of the requested k were swept")
    dtype, block_size = _pick(scored, "dtype", dtype), _pick(scored, "block_size", block_size)
    float32 = {r["model"]: r["bpb"] for r in scored if r["dtype"] == FLOAT and r["bits"] == 32}
    fig = Figure(figsize=(4.5 * len(bits), 7.5), layout="constrained")
    axes = fig.subplots(2, len(bits), squeeze=False, sharey="col")
    panels = (("dtype", "block_size", block_size, "data type", "block {}"),
              ("block_size", "dtype", dtype, "block size", "{}"))
    for row_axes, (varied, fixed, value, title, fixed_text) in zip(axes, panels, strict=True):
        options = list(dict.fromkeys(r[varied] for r in scored if r["dtype"] != FLOAT))
        for ax, k in zip(row_axes, bits, strict=True):
            for option, color in zip(options, _colors(len(options)), strict=True):
                curve = sorted((r for r in scored if r["bits"] == k and r[varied] == option
                                and r[fixed] == value and r["model"] in float32),
                               key=lambda r: r["total_bits"])
                ax.plot([r["total_bits"] for r in curve],
                        [r["bpb"] - float32[r["model"]] for r in curve], "o-", color=color,
                        label=_option_label(varied, option))
            ax.axhline(0, color="black", linewidth=0.8)
            _log_bits_axis(ax, "bits/byte above float32")
            shown = fixed_text.format("per tensor" if value is None else value)
            ax.set_title(f"{title}, k = {k} ({shown})")
            ax.legend(fontsize=8)
    return fig


def _option_label(varied: str, option) -> str:
    if varied == "block_size":
        return "per tensor" if option is None else f"block {option}"
    return option


def _colors(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["viridis"](i / max(1, n - 1) * 0.9) for i in range(n)]


def save_figures(rows, out_dir) -> list[Path]:
    """Write scaling.png (the main figure) and effects.png (data type, block size) into
    `out_dir`; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (("scaling.png", scaling_figure(rows)), ("effects.png", effect_figure(rows))):
        fig.savefig(out / name, dpi=120)
        paths.append(out / name)
    return paths
