"""k-bit cases of `minilm bench`: the fused k-bit GEMV against float32 `W @ x`, and unpack
throughput against a memory copy (chapters 8 and 9 quote these figures).

A weight's values do not change the speed, so each case builds its QuantizedTensor from random
codes and scales (quantizing an 8192 x 8192 matrix would take seconds) and checks the kernel
against float32 `W @ x` with W = its dequantized copy.
"""

from __future__ import annotations

import time

import numpy as np

from ..bench import Result, check_close, compare, median_time
from .matmul import MATMUL_VERSIONS, matmul
from .pack import packed_size, unpack
from .quantize import QuantizedTensor

GEMV_SHAPES = ((8192, 8192), (4096, 11008))
GEMV_FORMATS = ((4, "nf"), (8, "int"), (3, "nf"))


def random_qt(n: int, k: int, bits: int, dtype: str, block_size: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, packed_size(n * k, bits), dtype=np.uint8)
    if (n * k * bits) % 8:  # unused high bits of the last byte are zero
        packed[-1] &= (1 << ((n * k * bits) % 8)) - 1
    scales = rng.uniform(0.01, 0.1, n * k // block_size).astype(np.float32)
    return QuantizedTensor(packed, scales, (n, k), bits, dtype, block_size)


def gemv(quick: bool, backend: str):
    """k-bit GEMV (decoding: x is one row), block 64, vs NumPy float32 W @ x."""
    shapes = ((4096, 4096),) if quick else GEMV_SHAPES
    for n, k in shapes:
        for bits, dtype in GEMV_FORMATS:
            qt = random_qt(n, k, bits, dtype)
            w = qt.dequantize()  # (N, K) float32
            x = np.random.default_rng(1).standard_normal(k, dtype=np.float32)
            reference = w @ x  # (N,)
            tolerance = 1e-3 * float(np.abs(reference).max())  # int16 activations in v3
            variants = {f"{backend} {bits}-bit {dtype}": lambda qt=qt, x=x: matmul(
                x, qt, backend=backend)}
            if not quick:
                variants.update({f"{bits}-bit {name}": lambda f=f, qt=qt, x=x: f(x, qt)
                                 for name, f in MATMUL_VERSIONS.items() if name == "v2"})
            results = list(compare(f"gemv {n}x{k} {bits}-bit", variants,
                                   lambda w=w, x=x: w @ x, qt.nbytes / 1e9, "GB/s",
                                   repeats=5 if quick else 15, atol=tolerance, rtol=0,
                                   baseline_name="numpy float32 W @ x"))
            base = results[0]
            base.rate = (w.nbytes + x.nbytes) / 1e9 / base.seconds  # float32 bytes it reads
            yield from results
            del w


def unpack_throughput(quick: bool, backend: str):
    """Unpack k = 3, 4, 8 bits to uint8 codes vs np.copyto of the codes (GB/s moved)."""
    n = 2**24 if quick else 2**26
    src, dst = np.ones(n, np.uint8), np.empty(n, np.uint8)
    copy_seconds = median_time(lambda: np.copyto(dst, src), 5)
    yield Result("unpack", f"np.copyto {n >> 20} Mi bytes", copy_seconds,
                 2 * n / 1e9 / copy_seconds, "GB/s", copy_seconds)
    rng = np.random.default_rng(0)
    for bits in (3, 4, 8):
        codes = rng.integers(0, 2**bits, n, dtype=np.uint8)
        from .pack import pack

        packed = pack(codes, bits)
        check_close(f"unpack {bits}", unpack(packed, bits, n, out=dst), codes, 0, 0)
        time.sleep(0.3)
        seconds = median_time(lambda p=packed, b=bits: unpack(p, b, n, out=dst), 5)
        moved = packed.nbytes + n  # read packed, write codes
        yield Result("unpack", f"{backend} unpack {bits}-bit", seconds, moved / 1e9 / seconds,
                     "GB/s", copy_seconds * moved / (2 * n))


def decode(quick: bool, backend: str):
    """Greedy decoding (KV cache) with the largest shipped model: float32 vs 4-bit NF block 64.

    First the 4-bit model's logits on a prompt are checked against its reference backend
    (dequantize, then matmul); then both models generate the same number of tokens.
    """
    from ..generate import generate
    from ..model import available_models, load
    from ..tokenizer import ByteTokenizer
    from .model import quantize_model

    names = available_models()
    if not names:
        raise ValueError("kbit-decode needs a shipped model and none ships in this installation")
    model = load(names[-1])
    quantized = quantize_model(model, bits=4, dtype="nf", block_size=64)
    prompt = "def read(path):\n    "
    tokens = ByteTokenizer().encode(prompt)
    check_close("kbit-decode logits", quantized.forward(tokens, backend),
                quantized.forward(tokens, "reference"), atol=1e-2, rtol=1e-2)
    n_new = 64 if quick else 256

    def decoding(m):
        return lambda: generate(m, prompt, max_new_tokens=n_new, temperature=0, backend=backend)

    base = median_time(decoding(model), 1 if quick else 3)
    yield Result(f"decode {names[-1]} {n_new} tokens", f"{backend} float32", base,
                 n_new / base, "tok/s", base)
    time.sleep(0.3)
    seconds = median_time(decoding(quantized), 1 if quick else 3)
    yield Result(f"decode {names[-1]} {n_new} tokens", f"{backend} 4-bit nf b64", seconds,
                 n_new / seconds, "tok/s", base)


CASES = {"kbit-gemv": gemv, "kbit-unpack": unpack_throughput, "kbit-decode": decode}
