"""The benchmark cases of `minilm bench` (see `bench.py` for how each is checked and timed).

Each case is a generator `case(quick, backend)` of `bench.Result`s whose first row is the
baseline (the NumPy reference, or the slower method the case is about) measured in the same run.
"""

from __future__ import annotations

import numpy as np

from .backend import check_backend
from .bench import Result, compare
from .config import ModelConfig
from .model import MiniLM


def _fast_kernels(backend: str):
    if check_backend(backend) == "reference":
        raise ValueError("benchmark a fast backend ('cpu' or 'cuda') against the reference")
    from . import backend as dispatch

    return dispatch.ops(backend)


def attention(quick: bool, backend: str):
    """Causal attention, H=8, D=64, T in 128, 512, 1024: every numbered version."""
    _fast_kernels(backend)
    for t in (128, 512) if quick else (128, 512, 1024):
        yield from _attention_at(t, backend, repeats=3 if quick else 7)


def _attention_at(t: int, backend: str, repeats: int):
    from .kernels.attention import ATTENTION_VERSIONS, attention_reference

    rng = np.random.default_rng(0)
    heads, dim = 8, 64
    q, k, v = (rng.standard_normal((heads, t, dim), dtype=np.float32) for _ in range(3))
    flops = 4.0 * heads * dim * t * (t + 1) / 2  # q.k and p*v over the causal half
    variants = {f"{backend} {name}": (lambda f=f: f(q, k, v, causal=True))
                for name, f in ATTENTION_VERSIONS.items()}
    yield from compare(f"attention T={t}", variants,
                       lambda: attention_reference(q, k, v, causal=True),
                       flops / 1e9, "GFLOP/s", repeats=repeats)


def ffn(quick: bool, backend: str):
    """Feed-forward network, T=256, C=512, F=2048."""
    from .kernels.ffn import ffn_reference

    kernels = _fast_kernels(backend)
    rng = np.random.default_rng(1)
    t, c, f = 256, 512, 2048
    x = rng.standard_normal((t, c), dtype=np.float32)
    w1 = (rng.standard_normal((c, f), dtype=np.float32) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((f, c), dtype=np.float32) * 0.05).astype(np.float32)
    b1 = rng.standard_normal(f, dtype=np.float32)
    b2 = rng.standard_normal(c, dtype=np.float32)
    yield from compare(f"ffn T={t} C={c} F={f}",
                       {backend: lambda: kernels.ffn(x, w1, b1, w2, b2)},
                       lambda: ffn_reference(x, w1, b1, w2, b2),
                       4.0 * t * c * f / 1e9, "GFLOP/s", repeats=3 if quick else 7,
                       atol=1e-4, rtol=1e-4)


BENCH_CONFIG = ModelConfig(d_model=128, n_heads=4, n_layers=4, d_ff=512, max_seq_len=512)


def forward(quick: bool, backend: str):
    """Whole-model forward (random weights, the 'small' shape), B=4 sequences of T=256."""
    _fast_kernels(backend)
    model = MiniLM.init(BENCH_CONFIG, seed=0)
    tokens = np.random.default_rng(2).integers(0, 256, size=(4, 256))
    yield from compare("model forward B=4 T=256", {backend: lambda: model.forward(tokens, backend)},
                       lambda: model.forward(tokens, "reference"), tokens.size, "tok/s",
                       repeats=3 if quick else 5, atol=1e-4, rtol=1e-3)


def generation(quick: bool, backend: str):
    """Greedy generation of 256 new tokens: KV cache vs re-running the full forward each step."""
    from .generate import generate

    _fast_kernels(backend)
    model = MiniLM.init(BENCH_CONFIG, seed=0)
    n_new = 64 if quick else 256

    def run(use_cache: bool) -> np.ndarray:
        text = generate(model, "T", max_new_tokens=n_new, temperature=0, backend=backend,
                        use_cache=use_cache)
        return np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)

    yield from compare(f"generate {n_new} tokens", {f"{backend} KV cache": lambda: run(True)},
                       lambda: run(False), n_new, "tok/s", repeats=1 if quick else 3,
                       atol=0, rtol=0, baseline_name=f"{backend} no cache")


def _training_batch(quick: bool, backend: str):
    """The recipe, parameters and batch of the training cases, in the training loop's process
    settings (`threads.tune_for_training`): its thread part only takes effect when this is the
    first case of the process, so `minilm bench train` on its own measures what `minilm train`
    gets."""
    from .backward import check_train_backend
    from .family import recipe
    from .kernels.threads import tune_for_training
    from .params import init_params

    check_train_backend(backend)
    tune_for_training()
    name = "minilm-s" if quick else "minilm-m"
    config, settings = recipe(name)
    rng = np.random.default_rng(3)
    windows = rng.integers(0, 256, size=(settings.batch_size, settings.window(config) + 1))
    inputs, targets = windows[:, :-1], windows[:, 1:]  # (B, T) each
    return f"{name} B={inputs.shape[0]} T={inputs.shape[1]}", config, settings, inputs, targets, \
        init_params(config, seed=0)


def training(quick: bool, backend: str):
    """One training step (forward, backward, AdamW update) of a family recipe, B=16 windows:
    minilm-m (T=256), or minilm-s (T=128) with --quick. Rate: training tokens per second."""
    from .gradients import loss_and_grads
    from .optim import AdamW

    name, config, settings, inputs, targets, params = _training_batch(quick, backend)

    def step(on: str):
        updated = {n: p.copy() for n, p in params.items()}  # the update must not change params
        optimizer = AdamW(updated, backend=on)

        def run() -> np.ndarray:
            loss, grads = loss_and_grads(params, config, inputs, targets, on)
            optimizer.step(updated, grads, settings.lr)
            return np.concatenate([[loss], *(g.ravel() for g in grads.values())])
        return run

    yield from compare(f"train step {name}", {backend: step(backend)}, step("reference"),
                       inputs.size, "tok/s", repeats=3 if quick else 7, atol=2e-5, rtol=1e-2)


STEP_PARTS = (("matrix products, forward", "linear"), ("matrix products, backward",
              "linear_backward"), ("attention", "attention"),
              ("attention backward", "attention_backward"), ("layernorm", "layernorm"),
              ("layernorm backward", "layernorm_backward"), ("gelu", "gelu"),
              ("gelu backward", "gelu_backward"), ("cross-entropy", "cross_entropy"),
              ("embedding backward", "embedding_backward"),
              ("NumPy between the kernels", "other"), ("whole step (no update)", "total"))


def training_parts(quick: bool, backend: str):
    """Where the `train` case's step (without the AdamW update) spends its time, kernel by
    kernel (`gradients.step_profile`), in the NumPy reference and in `backend`. Rate: the
    part's share of its own path's step. Not checked here: the `train` case checks the step."""
    from .gradients import step_profile

    name, config, _, inputs, targets, params = _training_batch(quick, backend)
    ms = {on: step_profile(params, config, inputs, targets, on, steps=3 if quick else 5)
          for on in ("reference", backend)}
    for label, key in STEP_PARTS:
        base = ms["reference"][key] / 1e3
        for on, variant in (("reference", "numpy reference"), (backend, backend)):
            seconds = ms[on][key] / 1e3
            yield Result(f"{name}: {label}", variant, seconds,
                         100 * ms[on][key] / ms[on]["total"], "% of step", base)


CASES = {"attention": attention, "ffn": ffn, "forward": forward, "generate": generation,
         "train": training, "train-parts": training_parts}
