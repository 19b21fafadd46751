"""Chapter 8 (packing bits): the bit layout of `kbit.pack` drawn for any k, and its throughput.

    fig = bit_layout_figure(bits=3)          # 8 codes -> 3 bytes, every stream bit coloured
    rows = pack_throughput(n=2**20)          # reference vs Numba pack / unpack, GB/s per k
    layout_panel()                           # slider: bits

The drawing is made from `kbit.pack`'s own output (the bytes are read back bit by bit), so it
shows what the library does, not a second implementation of the layout.
"""

from __future__ import annotations

import numpy as np

from .. import kbit
from ..bench import median_time
from .caption import caption
from .common import figure, int_slider, panel


def example_codes(bits: int) -> np.ndarray:
    """One group of 8 example codes that fit in `bits` bits (uint8; fixed per k)."""
    return np.random.default_rng(bits).integers(0, 1 << bits, 8, dtype=np.uint8)


def bit_layout(codes: np.ndarray, bits: int) -> dict:
    """The packed bytes of `codes` and, for each stream bit, its value and the code it holds:
    {"packed": bytes (uint8), "bit_values": (8 * n_bytes,), "owner": (8 * n_bytes,) code index
    or -1 for padding}. Stream bit b is bit b % 8 of byte b // 8 (DESIGN.md)."""
    packed = kbit.pack(np.asarray(codes, np.uint8), bits)
    bit_values = np.unpackbits(packed, bitorder="little")  # stream order
    owner = np.arange(bit_values.size) // bits
    owner[owner >= len(codes)] = -1
    return {"packed": packed, "bit_values": bit_values, "owner": owner}


def bit_layout_figure(bits: int = 4, codes=None):
    """Three rows: the codes (k bits each), the bit stream (LSB of each code first), the bytes."""
    import matplotlib
    from matplotlib.patches import Rectangle

    codes = example_codes(bits) if codes is None else np.asarray(codes, np.uint8)
    layout = bit_layout(codes, bits)
    n_bits = layout["bit_values"].size
    colors = matplotlib.colormaps["tab10"]
    fig = figure(11, 2.9)
    ax = fig.subplots()

    def box(x, y, width, label, color, size=9):
        ax.add_patch(Rectangle((x, y), width, 0.9, facecolor=color, edgecolor="k", lw=0.8))
        ax.text(x + width / 2, y + 0.45, label, ha="center", va="center", fontsize=size)

    for i, code in enumerate(codes):  # row 2: codes
        box(i * bits, 2, bits, f"c{i}={code}\n{int(code):0{bits}b}", colors(i % 10),
            8 if bits < 3 else 9)
    for b, (value, owner) in enumerate(zip(layout["bit_values"], layout["owner"],
                                           strict=True)):  # row 1: stream bits
        box(b, 1, 1, str(value), colors(owner % 10) if owner >= 0 else "white", 8)
    for j, byte in enumerate(layout["packed"]):  # row 0: bytes
        box(8 * j, 0, 8, f"byte {j} = 0x{byte:02x} = {byte:08b}", "0.92")
    ax.set(xlim=(-0.5, n_bits + 0.5), ylim=(-0.2, 3.0), yticks=[0.45, 1.45, 2.45],
           yticklabels=["bytes (bits\nwritten MSB first)", "stream bits\n(bit 0 first)",
                        f"codes ({bits} bits,\nMSB first)"], xlabel="stream bit")
    ax.set_title(f"k = {bits}: {len(codes)} codes fill {layout['packed'].size} bytes "
                 f"(code i holds stream bits [{bits}i, {bits}i + {bits}), LSB first)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return fig


def describe_layout(bits: int, codes=None) -> str:
    """The example codes and their packed bytes as text."""
    codes = example_codes(bits) if codes is None else np.asarray(codes, np.uint8)
    packed = kbit.pack(codes, bits)
    return (f"codes {list(map(int, codes))} -> kbit.pack(codes, {bits}) = "
            f"{[f'0x{b:02x}' for b in packed]} ({packed.size} bytes for {codes.size} codes; "
            f"kbit.unpack gives back {list(map(int, kbit.unpack(packed, bits, codes.size)))})")


def pack_throughput(n: int = 2**20, bits_list=(1, 2, 3, 4, 5, 6, 8), repeats: int = 5):
    """Time pack and unpack of n random codes, NumPy reference vs the Numba kernels.

    Returns a list of dicts {"bits", "op", "backend", "seconds", "gb_s"}; GB/s counts the bytes
    read plus written (codes n, packed n*k/8). Every result is checked against the reference.
    """
    rng = np.random.default_rng(0)
    rows = []
    for bits in bits_list:
        codes = rng.integers(0, 1 << bits, n, dtype=np.uint8)
        packed = kbit.pack_reference(codes, bits)
        moved = (n + packed.size) / 1e9
        for backend in ("reference", "cpu"):
            if not (np.array_equal(kbit.pack(codes, bits, backend), packed)
                    and np.array_equal(kbit.unpack(packed, bits, n, backend), codes)):
                raise AssertionError(f"{backend} pack/unpack of {bits} bits differs")
            for op, run in (("pack", lambda c=codes, b=bits, e=backend: kbit.pack(c, b, e)),
                            ("unpack", lambda p=packed, b=bits, e=backend: kbit.unpack(
                                p, b, n, e))):
                seconds = median_time(run, repeats)
                rows.append({"bits": bits, "op": op, "backend": backend, "seconds": seconds,
                             "gb_s": moved / seconds})
    return rows


def throughput_figure(rows):
    """GB/s of pack and unpack per k, reference and Numba (log scale)."""
    fig = figure(8, 3.5)
    ax = fig.subplots()
    for (op, backend), style in {("pack", "reference"): "s--", ("unpack", "reference"): "o--",
                                 ("pack", "cpu"): "s-", ("unpack", "cpu"): "o-"}.items():
        picked = [r for r in rows if r["op"] == op and r["backend"] == backend]
        ax.plot([r["bits"] for r in picked], [r["gb_s"] for r in picked], style,
                label=f"{op} ({'NumPy reference' if backend == 'reference' else 'Numba'})")
    ax.set(yscale="log", xlabel="bits per code k", ylabel="GB/s (bytes read + written)",
           title="pack / unpack throughput")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def layout_panel():
    """Slider bits (1..8) over `bit_layout_figure` and `describe_layout`."""
    return panel(lambda bits: (bit_layout_figure(bits), caption(describe_layout(bits))),
                 {"bits": int_slider("bits", 1, 8, 3)})
