"""Backward pass: every layer against finite differences (float64), the whole model's gradient,
the Numba kernels against the NumPy references, and the error paths."""

import numpy as np
import pytest
from conftest import assert_close

from minilm import MiniLM, ModelConfig, backward
from minilm.gradients import BACKWARD_KERNELS, FORWARD_KERNELS, loss_and_grads, step_profile
from minilm.kernels import reference
from minilm.params import init_params


def numeric_grad(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def check_layer(forward, inputs, backward_fn, rng):
    """L = sum(forward(*inputs) * G) for a random G; backward_fn(G) must give dL/d(inputs)."""
    upstream = rng.standard_normal(forward(*inputs).shape)
    analytic = backward_fn(upstream)
    for x, grad in zip(inputs, analytic, strict=True):
        numeric = numeric_grad(lambda: float((forward(*inputs) * upstream).sum()), x)
        assert_close(grad, numeric, atol=1e-7, rtol=1e-6)


def test_linear_backward(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    check_layer(reference.linear, [x, w, b], lambda g: backward.linear_backward(x, w, g), rng)


def test_layernorm_backward(rng):
    x, gamma, beta = rng.standard_normal((3, 6)) * 2, rng.standard_normal(6), rng.standard_normal(6)
    check_layer(lambda *a: reference.layernorm(*a, eps=1e-5), [x, gamma, beta],
                lambda g: backward.layernorm_backward(x, gamma, g, eps=1e-5), rng)


def test_gelu_backward(rng):
    x = rng.standard_normal((4, 5)) * 3
    check_layer(reference.gelu, [x], lambda g: [backward.gelu_backward(x, g)], rng)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("tq, tk", [(5, 5), (1, 1), (2, 4)])
def test_attention_backward(rng, causal, tq, tk):
    q = rng.standard_normal((2, tq, 3))
    k, v = rng.standard_normal((2, tk, 3)), rng.standard_normal((2, tk, 3))
    check_layer(lambda *a: reference.attention(*a, causal=causal), [q, k, v],
                lambda g: backward.attention_backward(q, k, v, g, causal=causal), rng)


def test_embedding_backward_adds_repeated_tokens(rng):
    table, tokens = rng.standard_normal((7, 3)), np.array([[1, 4, 1], [0, 6, 1]])
    check_layer(lambda t: t[tokens], [table],
                lambda g: [backward.embedding_backward(tokens, g, vocab_size=7)], rng)


def test_cross_entropy_value_and_gradient(rng):
    logits, targets = rng.standard_normal((2, 3, 6)), np.array([[0, 5, 2], [3, 3, 1]])
    loss, grad = backward.cross_entropy(logits, targets)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, targets[..., None], -1).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    numeric = numeric_grad(lambda: backward.cross_entropy(logits, targets)[0], logits)
    assert_close(grad, numeric, atol=1e-8, rtol=1e-6)


TINY = ModelConfig(vocab_size=11, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_seq_len=6)


def tiny_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {n: p.astype(np.float64) + rng.normal(0, 0.3, p.shape)  # away from the symmetric
              for n, p in init_params(TINY, seed).items()}  # init, so every path matters
    return params, rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5)), rng


def test_whole_model_gradient_float64():
    params, inputs, targets, rng = tiny_problem()
    _, grads = loss_and_grads(params, TINY, inputs, targets, backend="reference")
    assert list(grads) == list(params)
    h = 1e-6
    for name, p in params.items():  # every entry, through a random direction per parameter
        direction = rng.standard_normal(p.shape)
        p += h * direction
        up = loss_and_grads(params, TINY, inputs, targets, "reference")[0]
        p -= 2 * h * direction
        down = loss_and_grads(params, TINY, inputs, targets, "reference")[0]
        p += h * direction
        assert (up - down) / (2 * h) == pytest.approx(np.vdot(grads[name], direction),
                                                      rel=1e-6, abs=1e-9), name
    unused = grads["pos_emb"][inputs.shape[1]:]  # positions past T get no gradient
    assert not unused.any()
    rows = grads["tok_emb"]  # tied head: every row gets a gradient, seen or not
    assert np.all(np.abs(rows).sum(axis=1) > 0)


def test_some_entries_against_finite_differences():
    params, inputs, targets, _ = tiny_problem(1)
    _, grads = loss_and_grads(params, TINY, inputs, targets, backend="reference")
    for name in ("tok_emb", "blocks.0.attn.w_qkv", "blocks.1.ln1.gamma", "ln_f.beta"):
        p = params[name].reshape(-1)
        for i in (0, p.size // 2, p.size - 1):
            numeric = numeric_grad(lambda: loss_and_grads(params, TINY, inputs, targets,
                                                          "reference")[0], p[i:i + 1])
            assert numeric[0] == pytest.approx(grads[name].reshape(-1)[i], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_training_loss_equals_model_forward(backend):
    model = MiniLM.init(ModelConfig(d_model=16, n_heads=2, n_layers=2, d_ff=32, max_seq_len=12))
    rng = np.random.default_rng(3)
    inputs, targets = rng.integers(0, 256, (3, 12)), rng.integers(0, 256, (3, 12))
    loss, _ = loss_and_grads(model.params, model.config, inputs, targets, backend)
    expected, _ = backward.cross_entropy(model.forward(inputs, backend="reference")
                                         .astype(np.float64), targets)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_cpu_model_gradients_equal_reference_and_are_deterministic():
    config = ModelConfig(d_model=32, n_heads=4, n_layers=2, d_ff=64, max_seq_len=40)
    params = init_params(config, 2)
    rng = np.random.default_rng(4)
    inputs, targets = rng.integers(0, 256, (3, 37)), rng.integers(0, 256, (3, 37))
    loss_ref, ref = loss_and_grads(params, config, inputs, targets, "reference")
    loss_cpu, cpu = loss_and_grads(params, config, inputs, targets, "cpu")
    assert loss_cpu == pytest.approx(loss_ref, rel=1e-5)
    for name in params:
        assert cpu[name].dtype == np.float32
        assert_close(cpu[name], ref[name], atol=2e-6, rtol=1e-3)
    again = loss_and_grads(params, config, inputs, targets, "cpu")[1]
    assert all(np.array_equal(again[n], cpu[n]) for n in params)  # bit for bit


# ------------------------------------------------------- Numba kernels against the references

def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def cpu():
    from minilm.kernels import backward_cpu

    return backward_cpu


@pytest.mark.parametrize("shape", [(1, 1, 4), (3, 7, 16), (2, 2, 33, 8), (1, 1, 129, 32),
                                   (2, 3, 1, 5), (2, 1, 49, 1), (1, 1, 97, 64), (1, 2, 300, 40)])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_backward_cpu(cpu, rng, shape, causal):
    q, k, v, d_out = (f32(rng, *shape, scale=2.0) for _ in range(4))
    for out, ref in zip(cpu.attention_backward(q, k, v, d_out, causal),
                        backward.attention_backward(q, k, v, d_out, causal), strict=True):
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert_close(out, ref, atol=2e-5, rtol=1e-4)


def test_attention_backward_cpu_decoding_alignment(cpu, rng):
    q, d_out = f32(rng, 2, 3, 8), f32(rng, 2, 3, 8)  # 3 new queries after 6 cached keys
    k, v = f32(rng, 2, 9, 8), f32(rng, 2, 9, 8)
    for out, ref in zip(cpu.attention_backward(q, k, v, d_out),
                        backward.attention_backward(q, k, v, d_out), strict=True):
        assert_close(out, ref, atol=2e-5, rtol=1e-4)
    q, d_out = f32(rng, 1, 50, 24), f32(rng, 1, 50, 24)  # blocks of queries over 301 keys
    k, v = f32(rng, 1, 301, 24), f32(rng, 1, 301, 24)
    for causal in (True, False):
        for out, ref in zip(cpu.attention_backward(q, k, v, d_out, causal),
                            backward.attention_backward(q, k, v, d_out, causal), strict=True):
            assert_close(out, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (65, 33), (2, 70, 64), (129, 5)])
def test_layernorm_backward_cpu(cpu, rng, shape):
    x, d_y = f32(rng, *shape, scale=3.0), f32(rng, *shape)
    gamma = f32(rng, shape[-1])
    for out, ref in zip(cpu.layernorm_backward(x, gamma, d_y, 1e-5),
                        backward.layernorm_backward(x, gamma, d_y, 1e-5), strict=True):
        assert_close(out, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(1,), (3, 5), (1025,), (4, 700)])
def test_gelu_backward_cpu(cpu, rng, shape):
    x, d_y = f32(rng, *shape, scale=4.0), f32(rng, *shape)
    exact = backward.gelu_backward(x.astype(np.float64), d_y.astype(np.float64))  # float32 tanh
    assert_close(cpu.gelu_backward(x, d_y), exact, atol=1e-6, rtol=1e-4)  # cancels in the tails


@pytest.mark.parametrize("shape", [(7,), (1, 1), (5, 256), (2, 3, 17)])  # (7,): one position
def test_cross_entropy_cpu(cpu, rng, shape):
    logits = f32(rng, *shape, scale=10.0)
    targets = rng.integers(0, shape[-1], shape[:-1])
    loss, grad = cpu.cross_entropy(logits, targets)
    loss_ref, grad_ref = backward.cross_entropy(logits, targets)
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-6)
    assert_close(grad, grad_ref, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("module", ["reference", "cpu"])
@pytest.mark.parametrize("lead", [(3,), (2, 3)])
def test_attention_backward_writes_into_views_of_one_buffer(cpu, rng, module, lead):
    """The training backward passes `out=` views of its (B, T, 3, H, D) d_qkv buffer."""
    ops = cpu if module == "cpu" else backward
    t, d = 11, 8
    q, k, v, d_out = (f32(rng, *lead, t, d) for _ in range(4))
    buffer = np.full((*lead[:-1], t, 3, lead[-1], d), np.nan, np.float32)  # (.., T, 3, H, D)
    views = tuple(np.swapaxes(buffer[..., i, :, :], -2, -3) for i in range(3))  # (.., H, T, D)
    returned = ops.attention_backward(q, k, v, d_out, out=views)
    assert all(r is view for r, view in zip(returned, views, strict=True))
    for view, expected in zip(views, ops.attention_backward(q, k, v, d_out), strict=True):
        np.testing.assert_array_equal(view, expected)


@pytest.mark.parametrize("module", ["reference", "cpu"])
def test_attention_backward_out_errors(cpu, rng, module):
    ops = cpu if module == "cpu" else backward
    q = f32(rng, 2, 5, 4)
    good = [np.empty_like(q) for _ in range(3)]
    read_only = np.empty_like(q)
    read_only.flags.writeable = False
    with pytest.raises(TypeError, match="out must be a tuple of three arrays"):
        ops.attention_backward(q, q, q, q, out=good[:2])
    with pytest.raises(ValueError, match=r"out d_k must be a writable float32 array of shape "
                                         r"\(2, 5, 4\), got float32 \(2, 4, 5\)"):
        ops.attention_backward(q, q, q, q, out=(good[0], f32(rng, 2, 4, 5), good[2]))
    with pytest.raises(ValueError, match="out d_v .* got float64"):
        ops.attention_backward(q, q, q, q, out=(*good[:2], np.empty(q.shape)))
    with pytest.raises(ValueError, match="out d_q .* read-only"):
        ops.attention_backward(q, q, q, q, out=(read_only, *good[1:]))
    k = f32(rng, 2, 5, 4)
    with pytest.raises(ValueError, match="out d_k must not share memory with q, k, v or d_out"):
        ops.attention_backward(q, k, q, q, out=(good[0], k, good[2]))


# (16, 256, 64) x (64, 300): the two products run in threads; its sums over 4096 rows get the
# float32 rounding of 4096 terms, hence the larger atol
@pytest.mark.parametrize("rows, k, n, atol", [((2, 9), 5, 3, 1e-6), ((16, 256), 64, 300, 1e-4)])
def test_linear_and_embedding_backward_cpu(cpu, rng, rows, k, n, atol):
    x, w, d_y = f32(rng, *rows, k), f32(rng, k, n), f32(rng, *rows, n)
    for out, ref in zip(cpu.linear_backward(x, w, d_y), backward.linear_backward(x, w, d_y),
                        strict=True):
        assert_close(out, ref, atol=10 * atol, rtol=1e-5)
    tokens = rng.integers(0, 6, rows)
    assert_close(cpu.embedding_backward(tokens, x, 6), backward.embedding_backward(tokens, x, 6),
                 atol=atol, rtol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_step_profile_accounts_for_the_whole_step(rng, backend):
    config = ModelConfig(d_model=16, n_heads=2, n_layers=2, d_ff=32, max_seq_len=8)
    tokens = rng.integers(0, 256, (3, 9))
    profile = step_profile(init_params(config, seed=0), config, tokens[:, :-1], tokens[:, 1:],
                           backend, steps=2)
    kernels = (*FORWARD_KERNELS, *BACKWARD_KERNELS)
    assert set(profile) == {*kernels, "other", "total"}
    assert all(profile[name] > 0 for name in profile)
    assert sum(profile[name] for name in kernels) <= profile["total"]


# -------------------------------------------------------------------------------- error paths

def test_errors_are_clear(cpu, rng):
    x = f32(rng, 3, 4)
    with pytest.raises(TypeError, match="float32"):
        cpu.gelu_backward(x.astype(np.float64), x.astype(np.float64))
    with pytest.raises(ValueError, match="d_y must have shape"):
        backward.gelu_backward(x, x[:, :2])
    with pytest.raises(TypeError, match="d_y must have dtype"):
        backward.layernorm_backward(x, x[0], x.astype(np.float64))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        cpu.cross_entropy(x, np.array([0, 1, 4]))
    with pytest.raises(TypeError, match="targets must be an integer array"):
        backward.cross_entropy(x, np.zeros(3))
    with pytest.raises(ValueError, match="backend"):
        backward.backward_ops("cuda")


def test_batch_errors():
    params = init_params(TINY, 0)
    ok = np.zeros((2, 6), np.int64)
    with pytest.raises(ValueError, match="sequence length 7 > max_seq_len=6"):
        loss_and_grads(params, TINY, np.zeros((2, 7), np.int64), np.zeros((2, 7), np.int64))
    with pytest.raises(ValueError, match="targets must have shape"):
        loss_and_grads(params, TINY, ok, ok[:, :5])
    with pytest.raises(ValueError, match="inputs must be a non-empty"):
        loss_and_grads(params, TINY, ok[0], ok[0])
    with pytest.raises(ValueError, match="inputs must lie in"):
        loss_and_grads(params, TINY, ok + 11, ok)
