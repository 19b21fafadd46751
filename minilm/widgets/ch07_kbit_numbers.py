"""Chapter 7 (numbers in k bits): a real weight's histogram under the k-bit codebooks.

    w = trained_weight(minilm.load("minilm-s"))         # one FFN weight matrix, float32
    report = quantization_report(w, bits=4, dtype="nf", block_size=64)
    fig = codebook_figure(w, bits=4, dtype="nf", block_size=64)
    fig = codebooks_figure(bits=3)                      # the levels of int, fp and nf
    fig = block_size_figure(w, bits=4)                  # SQNR vs block size
    kbit_panel(w)                                       # sliders: bits, data type, block size

`codebook_figure` draws the weights as the quantizer sees them (each value divided by the
absolute maximum of its block, so in [-1, 1]) with the codebook's levels on top, and beside it
the SQNR of every bit width and data type, with the current choice marked. Every quantization
runs through `minilm.kbit`; nothing is re-implemented here.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import kbit
from .caption import caption
from .common import figure, int_slider, panel

BLOCK_CHOICES = (None, 1024, 256, 64, 16)  # None: one scale for the whole tensor
DTYPE_COLORS = {"int": "tab:blue", "fp": "tab:orange", "nf": "tab:green"}


def trained_weight(model, name: str = "blocks.0.ffn.w1") -> np.ndarray:
    """A float32 weight of a trained model (default: the first FFN's input matrix)."""
    if name not in model.params:
        raise ValueError(f"the model has no parameter {name!r}; it has {', '.join(model.params)}")
    return np.ascontiguousarray(model.params[name], dtype=np.float32)


def scaled_values(w: np.ndarray, block_size: int | None) -> np.ndarray:
    """w flattened and divided by the absolute maximum of its block: what the codebook sees."""
    flat = w.astype(np.float32).ravel()  # (n,)
    block = block_size or flat.size
    padded = np.zeros(-(-flat.size // block) * block, np.float32)
    padded[: flat.size] = flat
    blocks = padded.reshape(-1, block)  # (n_blocks, B)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    return (blocks / np.where(absmax > 0, absmax, 1)).ravel()[: flat.size]


def quantization_report(w: np.ndarray, bits: int = 4, dtype: str = "nf",
                        block_size: int | None = 64) -> dict:
    """Quantize w and measure it: {"bits", "dtype", "block_size", "bits_per_param", "mse",
    "rmse", "max_abs_error", "sqnr_db", "levels_used"} (levels_used: distinct codes in use)."""
    qt = kbit.quantize(w, bits=bits, dtype=dtype, block_size=block_size)
    stats = kbit.error_stats(w, qt)
    used = np.unique(qt.codebook[qt.codes()]).size
    return {"bits": bits, "dtype": dtype, "block_size": block_size,
            "bits_per_param": qt.bits_per_param, **stats, "rmse": float(np.sqrt(stats["mse"])),
            "levels_used": int(used)}


def describe(report: dict) -> str:
    """One line of text for a report (what the panel prints under the figure)."""
    block = "one scale per tensor" if report["block_size"] is None else \
        f"blocks of {report['block_size']}"
    return (f"{report['bits']}-bit {report['dtype']}, {block}: "
            f"{report['bits_per_param']:.3f} bits/param, SQNR {report['sqnr_db']:.2f} dB, "
            f"RMS error {report['rmse']:.2e}, max error {report['max_abs_error']:.2e}, "
            f"{report['levels_used']} of {2 ** report['bits']} levels used")


@functools.lru_cache(maxsize=64)
def _sqnr_curves(key: bytes, shape: tuple, block_size) -> dict[str, list[float]]:
    w = np.frombuffer(key, np.float32).reshape(shape)
    return {dtype: [kbit.error_stats(w, kbit.quantize(w, b, dtype, block_size))["sqnr_db"]
                    for b in kbit.BITS] for dtype in kbit.DTYPES}


def sqnr_curves(w: np.ndarray, block_size: int | None = 64) -> dict[str, list[float]]:
    """SQNR (dB) for every bit width in `kbit.BITS`, per data type (cached per weight)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    return _sqnr_curves(w.tobytes(), w.shape, block_size)


def codebook_figure(w: np.ndarray, bits: int = 4, dtype: str = "nf",
                    block_size: int | None = 64):
    """Left: histogram of the block-scaled weights with the codebook levels (vertical lines).
    Right: SQNR vs bits for the three data types, the current choice circled."""
    report = quantization_report(w, bits, dtype, block_size)
    table = kbit.codebook(dtype, bits)
    fig = figure(11, 3.8)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.7, 1]})
    left.hist(scaled_values(w, block_size), bins=161, range=(-1, 1), color="0.6")
    for level in table:
        left.axvline(level, color=DTYPE_COLORS[dtype], lw=0.8 if bits > 5 else 1.4, alpha=0.8)
    left.set(xlim=(-1.05, 1.05), xlabel="weight / absmax of its block",
             ylabel="number of weights",
             title=f"the {np.unique(table).size} levels of {bits}-bit {dtype!r} over "
                   f"{w.size:,} trained weights")
    for name, curve in sqnr_curves(w, block_size).items():
        right.plot(list(kbit.BITS), curve, "o-", ms=3, color=DTYPE_COLORS[name], label=name)
    right.plot([bits], [report["sqnr_db"]], "o", ms=12, mfc="none", mec="k", mew=1.5)
    right.set(xlabel="bits per weight k", ylabel="SQNR (dB), higher is better",
              title="signal-to-quantization-noise ratio")
    right.grid(alpha=0.3)
    right.legend(title="data type")
    return fig


def codebooks_figure(bits: int = 4):
    """The levels of the three data types at k bits, one row each, on [-1, 1]."""
    fig = figure(9, 2.4)
    ax = fig.subplots()
    for row, dtype in enumerate(kbit.DTYPES):
        table = kbit.codebook(dtype, bits)
        ax.plot(table, np.full(table.size, -row), "|", ms=22, mew=2, color=DTYPE_COLORS[dtype])
    ax.set(yticks=[0, -1, -2], yticklabels=kbit.DTYPES, ylim=(-2.6, 0.6), xlim=(-1.05, 1.05),
           xlabel="value (x absmax of the block)",
           title=f"the {2 ** bits} codes of each {bits}-bit data type")
    ax.grid(alpha=0.3, axis="x")
    return fig


def block_size_figure(w: np.ndarray, bits: int = 4, block_sizes=(16, 32, 64, 128, 256, 1024,
                                                                   None)):
    """SQNR of each data type against the block size (with the bits/param each block costs)."""
    fig = figure(8, 3.4)
    ax = fig.subplots()
    labels = ["tensor" if b is None else str(b) for b in block_sizes]
    for dtype in kbit.DTYPES:
        reports = [quantization_report(w, bits, dtype, b) for b in block_sizes]
        ax.plot(labels, [r["sqnr_db"] for r in reports], "o-", color=DTYPE_COLORS[dtype],
                label=dtype)
    costs = [quantization_report(w, bits, "int", b)["bits_per_param"] for b in block_sizes]
    for x, cost in enumerate(costs):
        ax.annotate(f"{cost:.2f} b", (x, 0), xycoords=("data", "axes fraction"),
                    xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
    ax.set(xlabel="block size (values per absmax scale); bits/param at the bottom",
           ylabel="SQNR (dB)", title=f"{bits}-bit: smaller blocks, less error, more bits")
    ax.grid(alpha=0.3)
    ax.legend(title="data type")
    return fig


def kbit_panel(w: np.ndarray):
    """Sliders bits / data type / block size over `codebook_figure` and `describe`."""
    import ipywidgets as W

    for bits in kbit.BITS:  # compile each bit width's unpack kernel now, not on a slider move
        quantization_report(w[:1], bits, "int", None)
    controls = {
        "bits": int_slider("bits", min(kbit.BITS), max(kbit.BITS), 4),
        "dtype": W.ToggleButtons(options=kbit.DTYPES, value="nf", description="data type"),
        "block_size": W.Dropdown(options=[("per tensor", None)] + [
            (str(b), b) for b in BLOCK_CHOICES[1:]], value=64, description="block size"),
    }
    return panel(lambda **kw: (codebook_figure(w, **kw),
                               caption(describe(quantization_report(w, **kw)))), controls)
