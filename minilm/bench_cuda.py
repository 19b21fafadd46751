"""The cases of `minilm bench --backend cuda`: the GPU kernels checked against the NumPy
reference, then timed (chapter 11: GPUs with numba.cuda).

    cuda-gemv       k-bit GEMV (kbit matmul v2) at 4 and 8 bits on a 16384 x 16384 weight, far
                    larger than the L2 cache: time, effective GB/s (packed bytes + scales + x
                    read) and, as "x baseline", the fraction of the device copy bandwidth
                    measured in the same run (a device-to-device copy: read + write)
    cuda-attention  causal attention, H=8, D=64, T = 1024 and 4096, every version
    cuda-decode     greedy decoding tokens/s of a float32 model and of its 4-bit copy

Kernels are timed on data already on the device (`*_device` entry points, synchronising after
each call); decoding is timed end to end. In the simulator (NUMBA_ENABLE_CUDASIM=1) every shape
is tiny, so the cases finish in seconds: they then show that the checks pass, not GPU speed.
"""

from __future__ import annotations

import time

import numpy as np

from .bench import Result, check_close, median_time
from .config import ModelConfig


def _device():
    """(numba.cuda, whether it is the simulator); a clear error if there is no device."""
    from .backend import ops

    ops("cuda")
    from numba import cuda

    from .kernels.cuda.device import SIMULATOR

    return cuda, SIMULATOR


def _seconds(fn, simulator: bool, quick: bool, repeats: int) -> float:
    """Median time of fn() (after a warm-up call); in the simulator, where timings mean nothing,
    just the time of one call."""
    if simulator:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return median_time(fn, 3 if quick else repeats)


def copy_bandwidth(n_bytes: int) -> tuple[float, float]:
    """(seconds, GB/s) of a device-to-device copy of n_bytes (counting the read and the write)."""
    cuda, simulator = _device()
    src = cuda.to_device(np.ones(n_bytes, np.uint8))
    dst = cuda.device_array(n_bytes, np.uint8)

    def copy():
        dst.copy_to_device(src)
        cuda.synchronize()

    seconds = _seconds(copy, simulator, False, 5)
    return seconds, 2 * n_bytes / 1e9 / seconds


def gemv(quick: bool, backend: str):
    """k-bit GEMV v2 at 4 and 8 bits vs the device copy bandwidth."""
    from .kbit.bench_cases import random_qt
    from .kbit.cuda_matmul import device_qt, matmul_device

    cuda, simulator = _device()
    n, k = (8, 64) if simulator else (4096, 4096) if quick else (16384, 16384)  # W (N, K)
    case = f"cuda gemv {n}x{k}"
    size = max(n * k, 2**20)  # bytes to copy: as many as the 8-bit weight has
    copy_seconds, copy_rate = copy_bandwidth(size)
    yield Result(case, f"device copy {size >> 20} MiB", copy_seconds, copy_rate, "GB/s",
                 copy_seconds)
    x = np.random.default_rng(1).standard_normal((1, k), dtype=np.float32)  # one token
    x_d = cuda.to_device(x)
    sample = np.arange(0, n, max(1, n // 64))  # rows checked against the reference
    for bits, dtype in ((4, "nf"), (8, "int")):
        qt = random_qt(n, k, bits, dtype)
        weights = device_qt(qt)
        out = matmul_device(x_d, qt, weights, "v2").copy_to_host()[0]  # (N,)
        expected = qt.dequantize_rows(sample) @ x[0]
        check_close(f"gemv {bits}-bit", out[sample], expected,
                    1e-4 * float(np.abs(expected).max()), 1e-4)

        def run(qt=qt, weights=weights):
            matmul_device(x_d, qt, weights, "v2")
            cuda.synchronize()

        seconds = _seconds(run, simulator, quick, 20)
        moved = qt.nbytes + x.nbytes + 4 * n
        yield Result(case, f"{bits}-bit {dtype} v2", seconds, moved / 1e9 / seconds, "GB/s",
                     copy_seconds * moved / (2 * size))


def attention(quick: bool, backend: str):
    """Causal attention, every CUDA version, vs the NumPy reference on the host."""
    from .kernels.attention import attention_reference
    from .kernels.cuda.attention_kernels import ATTENTION_VERSIONS, attention_device

    cuda, simulator = _device()
    heads, dim = (1, 8) if simulator else (8, 64)
    lengths = (20,) if simulator else (1024,) if quick else (1024, 4096)
    rng = np.random.default_rng(0)
    for t in lengths:
        q, k, v = (rng.standard_normal((heads, t, dim), dtype=np.float32) for _ in range(3))
        expected = attention_reference(q, k, v)
        base = _seconds(lambda q=q, k=k, v=v: attention_reference(q, k, v), simulator, quick, 3)
        flops = 4.0 * heads * dim * t * (t + 1) / 2 / 1e9  # q.k and p*v over the causal half
        yield Result(f"cuda attention T={t}", "numpy reference (host)", base, flops / base,
                     "GFLOP/s", base)
        devices = [cuda.to_device(a) for a in (q, k, v)]
        for name, version in ATTENTION_VERSIONS.items():
            check_close(f"attention {name}", version(q, k, v), expected, 1e-5, 1e-4)

            def run(name=name, devices=devices):
                attention_device(*devices, True, name)
                cuda.synchronize()

            seconds = _seconds(run, simulator, quick, 10)
            yield Result(f"cuda attention T={t}", f"cuda {name}", seconds, flops / seconds,
                         "GFLOP/s", base)


DECODE_CONFIG = ModelConfig(d_model=1024, n_heads=16, n_layers=4, d_ff=4096, max_seq_len=256)
SIMULATOR_CONFIG = ModelConfig(vocab_size=16, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                               max_seq_len=8)


def decode(quick: bool, backend: str):
    """Greedy decoding with the KV cache: float32 weights vs 4-bit NF (block 64) weights."""
    from . import kbit
    from .generate import generate_tokens
    from .model import MiniLM

    _, simulator = _device()
    config = SIMULATOR_CONFIG if simulator else DECODE_CONFIG
    n_new = 1 if simulator else 16 if quick else 64
    model = MiniLM.init(config, seed=0)
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=16 if simulator else 64)
    prompt = np.arange(3) % config.vocab_size
    times = {}
    for name, m in (("float32", model), ("4-bit nf", qmodel)):
        check_close(f"decode {name} logits", m.forward(prompt, backend="cuda"),
                    m.forward(prompt, backend="reference"), 1e-3, 1e-3)
        times[name] = _seconds(
            lambda m=m: list(generate_tokens(m, prompt, n_new, temperature=0, backend="cuda")),
            simulator, quick, 3)
    for name, m in (("float32", model), ("4-bit nf", qmodel)):
        yield Result(f"cuda decode {n_new} tokens", f"{name} ({kbit.total_bits(m) / 8e6:.3g} MB)",
                     times[name], n_new / times[name], "tok/s", times["float32"])


CASES = {"cuda-gemv": gemv, "cuda-attention": attention, "cuda-decode": decode}
