"""The optimizer side of training: AdamW, gradient clipping, the learning-rate schedule.

Taught in chapter 6 (training).
  * AdamW (Loshchilov & Hutter, 2019): Adam's step m_hat / (sqrt(v_hat) + eps) plus a *decoupled*
    weight decay p -= lr * wd * p that does not pass through Adam's scaling. Only the weight
    matrices decay; LayerNorm gains and biases, and the embedding tables, do not (shrinking a
    gain or a rarely seen token's row towards zero is not regularisation, it is damage).
  * Clipping by global norm: if the norm of all gradients together exceeds `max_norm`, every
    gradient is scaled by the same factor, so the direction of the step is kept.
  * Schedule: linear warm-up from ~0 to the peak rate, then a cosine down to `min_ratio * peak`.
"""

from __future__ import annotations

import math

import numpy as np

from .backward import check_train_backend

NO_DECAY_TABLES = ("tok_emb", "pos_emb")


def decays(name: str, value: np.ndarray) -> bool:
    """Whether weight decay applies: weight matrices yes; gains, biases, embeddings no."""
    return value.ndim == 2 and name not in NO_DECAY_TABLES


def global_norm(grads: dict) -> float:
    """sqrt of the sum of every squared gradient entry (float64 accumulation)."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients in place so that their global norm is at most `max_norm`.

    Returns the norm before clipping (worth logging: spikes show instabilities)."""
    norm = global_norm(grads)
    if norm > max_norm:
        factor = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= factor
    return norm


def lr_at(step: int, steps: int, peak: float, warmup: int, min_ratio: float = 0.1) -> float:
    """Learning rate of step `step` (0-based) of `steps`: linear warm-up over `warmup` steps,
    then cosine decay from `peak` to `min_ratio * peak` at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - 1 - warmup)  # 0 -> 1
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class AdamW:
    """Adam with decoupled weight decay; its state (m, v, t) lives in float32 arrays beside the
    parameters, so that a checkpoint can hold it and a resumed run is bit-identical.

    backend "reference": the update below in NumPy; "cpu": the same arithmetic fused into one
    Numba pass per parameter (`kernels/adamw.py`)."""

    def __init__(self, params: dict, beta1: float = 0.9, beta2: float = 0.95,
                 eps: float = 1e-8, weight_decay: float = 0.1, backend: str = "reference"):
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.backend = check_train_backend(backend)
        self.m = {n: np.zeros_like(p) for n, p in params.items()}  # first moments
        self.v = {n: np.zeros_like(p) for n, p in params.items()}  # second moments
        self.t = 0  # steps taken (for the bias corrections)

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """Update `params` in place from `grads` with learning rate `lr`."""
        self.t += 1
        correction1 = 1 - self.beta1 ** self.t
        correction2 = 1 - self.beta2 ** self.t
        if self.backend == "cpu":
            from .kernels.adamw import adamw_update

            for name, p in params.items():
                adamw_update(p, grads[name], self.m[name], self.v[name], beta1=self.beta1,
                             beta2=self.beta2, step_size=lr / correction1,
                             correction2=correction2, eps=self.eps,
                             decay=lr * self.weight_decay if decays(name, p) else 0.0)
            return
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            if decays(name, p):
                p *= 1 - lr * self.weight_decay
            p -= (lr / correction1) * m / (np.sqrt(v / correction2) + self.eps)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """m and v as one flat dict of arrays ("m/NAME", "v/NAME") for a checkpoint."""
        return {**{f"m/{n}": a for n, a in self.m.items()},
                **{f"v/{n}": a for n, a in self.v.items()}}

    def load_state(self, arrays: dict, t: int) -> None:
        """Restore what `state_arrays` returned and the step count `t`."""
        for name in self.m:
            for kind, store in (("m", self.m), ("v", self.v)):
                saved = arrays.get(f"{kind}/{name}")
                if saved is None or saved.shape != store[name].shape:
                    raise ValueError(f"optimizer state lacks {kind}/{name} of shape "
                                     f"{store[name].shape}: not a checkpoint of this model")
                store[name] = saved.astype(store[name].dtype)
        self.t = int(t)
