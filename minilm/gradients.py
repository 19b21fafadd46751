"""The loss of the whole model on a batch and its gradient with respect to every parameter.

Taught in chapter 6 (training). `loss_and_grads` runs the training forward, which is the model's
forward (same kernels, through `backend.ops`) but keeps the activations the backward needs, and
then the backward: the layers of `minilm.backward` in reverse order. A residual connection
`x + f(x)` passes its gradient to both branches, so the backward adds the two; the tied LM head
and the token embedding add their gradients into one `tok_emb` gradient. `step_profile` times
each kernel of that forward and backward: where a training step's time goes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from types import SimpleNamespace

import numpy as np

from .backend import ops, region
from .backward import backward_ops, check_tokens
from .config import ModelConfig


def check_batch(config: ModelConfig, inputs, targets) -> tuple[np.ndarray, np.ndarray]:
    """inputs and targets: integer (B, T) token ids with 1 <= T <= max_seq_len."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.size == 0:
        raise ValueError(f"inputs must be a non-empty (B, T) array, got shape {inputs.shape}")
    if inputs.shape[1] > config.max_seq_len:
        raise ValueError(f"sequence length {inputs.shape[1]} > max_seq_len="
                         f"{config.max_seq_len} of the model")
    return (check_tokens("inputs", inputs, inputs.shape, config.vocab_size),
            check_tokens("targets", targets, inputs.shape, config.vocab_size))


def loss_and_grads(params: dict, config: ModelConfig, inputs, targets, backend: str = "cpu"):
    """Mean cross-entropy (nats per predicted token) of `targets` (B, T) given `inputs` (B, T),
    and {name: gradient} with the names, shapes and dtype of `params`.

    "reference" accepts float32 or float64 parameters (float64 for gradient checks), "cpu"
    float32. Parameters are not checked here (the training loop made them); tokens are.
    """
    grad_ops = backward_ops(backend)
    inputs, targets = check_batch(config, inputs, targets)
    with region(backend):
        return _loss_and_grads(params, config, inputs, targets, ops(backend), grad_ops)


def _loss_and_grads(params, config, inputs, targets, kernels, grad_ops):
    """The step itself, with the forward kernels and backward ops given as namespaces."""
    logits, tape = _forward(params, config, inputs, kernels)
    loss, d_logits = grad_ops.cross_entropy(logits, targets)
    return loss, _backward(params, config, inputs, tape, d_logits, grad_ops)


def _forward(p: dict, config: ModelConfig, tokens: np.ndarray, kernels):
    """The model's forward over (B, T) tokens -> logits (B, T, V) and the saved activations."""
    b, t = tokens.shape
    c, h, d = config.d_model, config.n_heads, config.head_dim
    eps = config.layernorm_eps
    x = p["tok_emb"][tokens] + p["pos_emb"][:t]  # (B, T, C)
    tape = []
    for layer in range(config.n_layers):
        pre = f"blocks.{layer}."
        saved = {"x": x}
        saved["h1"] = kernels.layernorm(x, p[pre + "ln1.gamma"], p[pre + "ln1.beta"], eps)
        qkv = kernels.linear(saved["h1"], p[pre + "attn.w_qkv"], p[pre + "attn.b_qkv"])  # (B,T,3C)
        qkv = qkv.reshape(b, t, 3, h, d).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        q, k, v = (np.ascontiguousarray(a) for a in qkv)  # once, for forward and backward
        saved.update(q=q, k=k, v=v)
        heads = kernels.attention(q, k, v, causal=True)  # (B, H, T, D)
        saved["merged"] = heads.transpose(0, 2, 1, 3).reshape(b, t, c)  # (B, T, C)
        x = x + kernels.linear(saved["merged"], p[pre + "attn.w_out"], p[pre + "attn.b_out"])
        saved["x_mid"] = x
        saved["h2"] = kernels.layernorm(x, p[pre + "ln2.gamma"], p[pre + "ln2.beta"], eps)
        saved["pre_act"] = kernels.linear(saved["h2"], p[pre + "ffn.w1"], p[pre + "ffn.b1"])
        saved["act"] = kernels.gelu(saved["pre_act"])  # (B, T, F)
        x = x + kernels.linear(saved["act"], p[pre + "ffn.w2"], p[pre + "ffn.b2"])
        tape.append(saved)
    final = kernels.layernorm(x, p["ln_f.gamma"], p["ln_f.beta"], eps)
    head_bias = np.zeros(config.vocab_size, x.dtype)
    logits = kernels.linear(final, p["tok_emb"].T, head_bias)  # (B, T, V): the tied head
    return logits, {"blocks": tape, "x_final": x, "final": final}


def _backward(p: dict, config: ModelConfig, tokens, tape, d_logits, grad_ops) -> dict:
    """Gradients of every parameter, from d_logits (B, T, V) back to the embeddings."""
    b, t = tokens.shape
    c, h, d = config.d_model, config.n_heads, config.head_dim
    eps = config.layernorm_eps
    grads = {}
    d_final, d_head, _ = grad_ops.linear_backward(tape["final"], p["tok_emb"].T, d_logits)
    d_x, grads["ln_f.gamma"], grads["ln_f.beta"] = grad_ops.layernorm_backward(
        tape["x_final"], p["ln_f.gamma"], d_final, eps)  # d_x (B, T, C)
    for layer in reversed(range(config.n_layers)):
        pre, saved = f"blocks.{layer}.", tape["blocks"][layer]
        d_act, grads[pre + "ffn.w2"], grads[pre + "ffn.b2"] = grad_ops.linear_backward(
            saved["act"], p[pre + "ffn.w2"], d_x)
        d_pre_act = grad_ops.gelu_backward(saved["pre_act"], d_act)  # (B, T, F)
        d_h2, grads[pre + "ffn.w1"], grads[pre + "ffn.b1"] = grad_ops.linear_backward(
            saved["h2"], p[pre + "ffn.w1"], d_pre_act)
        d_mid, grads[pre + "ln2.gamma"], grads[pre + "ln2.beta"] = grad_ops.layernorm_backward(
            saved["x_mid"], p[pre + "ln2.gamma"], d_h2, eps)
        d_x = d_x + d_mid  # the residual passes d_x through, the branch adds its part
        d_merged, grads[pre + "attn.w_out"], grads[pre + "attn.b_out"] = \
            grad_ops.linear_backward(saved["merged"], p[pre + "attn.w_out"], d_x)
        d_heads = d_merged.reshape(b, t, h, d).transpose(0, 2, 1, 3)  # (B, H, T, D)
        d_qkv = np.empty((b, t, 3, h, d), d_x.dtype)  # the layout of the qkv product's output
        grad_ops.attention_backward(saved["q"], saved["k"], saved["v"], d_heads, out=tuple(
            d_qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3)))  # (B, H, T, D) views
        d_h1, grads[pre + "attn.w_qkv"], grads[pre + "attn.b_qkv"] = grad_ops.linear_backward(
            saved["h1"], p[pre + "attn.w_qkv"], d_qkv.reshape(b, t, 3 * c))
        d_in, grads[pre + "ln1.gamma"], grads[pre + "ln1.beta"] = grad_ops.layernorm_backward(
            saved["x"], p[pre + "ln1.gamma"], d_h1, eps)
        d_x = d_x + d_in
    grads["tok_emb"] = grad_ops.embedding_backward(tokens, d_x, config.vocab_size) + d_head.T
    grads["pos_emb"] = np.zeros_like(p["pos_emb"])
    grads["pos_emb"][:t] = d_x.sum(axis=0)  # (T, C): every row of the batch used positions 0..T-1
    return {name: grads[name] for name in p}  # the order of `params`


FORWARD_KERNELS = ("layernorm", "linear", "attention", "gelu")
BACKWARD_KERNELS = ("cross_entropy", "linear_backward", "layernorm_backward", "gelu_backward",
                    "attention_backward", "embedding_backward")


def step_profile(params: dict, config: ModelConfig, inputs, targets, backend: str = "cpu",
                 steps: int = 3) -> dict[str, float]:
    """Milliseconds per `loss_and_grads` step spent in each kernel (median over `steps` steps,
    after one warm-up step), plus "other" (the NumPy work between kernels: embedding lookup,
    reshapes, residual adds) and "total". `linear` and `linear_backward` are the matrix
    products; "backward" names are the backward kernels."""
    grad_ops = backward_ops(backend)
    inputs, targets = check_batch(config, inputs, targets)
    seconds = defaultdict(float)

    def timed(module, names):
        def wrap(name):
            def call(*args, **kwargs):
                start = time.perf_counter()
                result = getattr(module, name)(*args, **kwargs)
                seconds[name] += time.perf_counter() - start
                return result
            return call
        return SimpleNamespace(**{name: wrap(name) for name in names})

    kernels, grads = timed(ops(backend), FORWARD_KERNELS), timed(grad_ops, BACKWARD_KERNELS)
    per_step = defaultdict(list)
    with region(backend):
        for step in range(steps + 1):
            seconds.clear()
            start = time.perf_counter()
            _loss_and_grads(params, config, inputs, targets, kernels, grads)
            in_kernels = sum(seconds.values())
            seconds["total"] = time.perf_counter() - start
            seconds["other"] = seconds["total"] - in_kernels
            if step:  # the first step compiles and warms the caches
                for name, value in seconds.items():
                    per_step[name].append(value * 1e3)
    return {name: float(np.median(values)) for name, values in per_step.items()}
