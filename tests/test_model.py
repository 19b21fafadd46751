"""The model: backends agree, the KV cache equals the full forward, generation, save/load."""

import numpy as np
import pytest
from conftest import assert_close

import minilm
from minilm import ByteTokenizer, MiniLM, ModelConfig
from minilm.evaluate import log_softmax
from minilm.generate import sample_token
from minilm.run_record import heldout_slice

TINY = ModelConfig(d_model=32, n_heads=4, n_layers=2, d_ff=64, max_seq_len=48)


@pytest.fixture(scope="module")
def model():
    return MiniLM.init(TINY, seed=0)


def tokens_of(text):
    return ByteTokenizer().encode(text)


def test_init_is_deterministic_per_seed():
    a, b, c = MiniLM.init(TINY, seed=1), MiniLM.init(TINY, seed=1), MiniLM.init(TINY, seed=2)
    assert all(np.array_equal(a.params[n], b.params[n]) for n in a.params)
    assert not np.array_equal(a.params["tok_emb"], c.params["tok_emb"])


def test_param_count_matches_shapes(model):
    c = TINY
    per_block = 4 * c.d_model + 3 * c.d_model ** 2 + 3 * c.d_model + c.d_model ** 2 + c.d_model \
        + 2 * c.d_model * c.d_ff + c.d_ff + c.d_model
    expected = (c.vocab_size + c.max_seq_len) * c.d_model + c.n_layers * per_block + 2 * c.d_model
    assert model.n_params == expected


@pytest.mark.parametrize("shape", [(1,), (7,), (48,), (3, 5), (2, 48)])
def test_cpu_equals_reference(model, shape):
    tokens = np.random.default_rng(0).integers(0, 256, size=shape)
    logits = model.forward(tokens, backend="cpu")
    assert logits.shape == (*shape, 256) and logits.dtype == np.float32
    assert_close(logits, model.forward(tokens, backend="reference"), atol=1e-4, rtol=1e-4)


def test_batch_rows_are_independent(model):
    tokens = np.random.default_rng(1).integers(0, 256, size=(3, 20))
    batched = model.forward(tokens)
    for row in range(3):
        assert_close(batched[row], model.forward(tokens[row]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_kv_cache_decoding_equals_full_forward(model, backend):
    tokens = tokens_of("The KV cache must not change the logits!")
    full = model.forward(tokens, backend=backend)
    cache = model.new_cache()
    prefix = 5  # a prefill of several tokens, then one token per step
    steps = [model.forward(tokens[:prefix], backend=backend, cache=cache)]
    steps += [model.forward(tokens[i:i + 1], backend=backend, cache=cache)
              for i in range(prefix, len(tokens))]
    assert_close(np.concatenate(steps), full, atol=1e-4, rtol=1e-4)
    assert cache.length == len(tokens)


def test_kv_cache_batched(model):
    tokens = np.random.default_rng(2).integers(0, 256, size=(2, 9))
    cache = model.new_cache(batch_size=2)
    steps = [model.forward(tokens[:, i:i + 1], cache=cache) for i in range(9)]
    assert_close(np.concatenate(steps, axis=1), model.forward(tokens), atol=1e-4, rtol=1e-4)


def test_generate_is_deterministic_and_excludes_prompt(model):
    a = minilm.generate(model, "Hello", max_new_tokens=30, temperature=1.0, seed=7)
    b = minilm.generate(model, "Hello", max_new_tokens=30, temperature=1.0, seed=7)
    c = minilm.generate(model, "Hello", max_new_tokens=30, temperature=1.0, seed=8)
    assert a == b and a != c
    assert len(a.encode("utf-8", "replace")) >= 10


def test_greedy_is_argmax_and_cache_free_path_agrees(model):
    text = minilm.generate(model, "abc", max_new_tokens=20, temperature=0)
    again = minilm.generate(model, "abc", max_new_tokens=20, temperature=0, use_cache=False,
                            backend="reference")
    assert text == again
    first = ByteTokenizer().encode("abc")
    assert ord(text[0]) == int(np.argmax(model.forward(first)[-1])) or text[0] == "\ufffd"


def test_generation_beyond_the_context_window(model):
    out = list(minilm.generate_tokens(model, tokens_of("x" * 60), 100, temperature=0))
    assert len(out) == 100


def test_top_k_restricts_choices(model):
    rng = np.random.default_rng(0)
    logits = np.arange(10, dtype=np.float32)
    picks = {sample_token(logits, 5.0, 3, rng) for _ in range(200)}
    assert picks == {7, 8, 9}


def test_empty_prompt_and_zero_tokens(model):
    assert isinstance(minilm.generate(model, "", max_new_tokens=5), str)
    assert minilm.generate(model, "hi", max_new_tokens=0) == ""


def test_save_load_round_trip(tmp_path, model):
    path = model.save(tmp_path / "tiny.npz")
    loaded = minilm.load(path)
    assert loaded.config == model.config
    tokens = tokens_of("round trip")
    assert np.array_equal(loaded.forward(tokens), model.forward(tokens))


def test_load_checks_names_and_shapes(tmp_path, model):
    path = tmp_path / "bad.npz"
    arrays = dict(model.params)
    arrays["__config__"] = np.array(__import__("json").dumps(TINY.to_dict()))
    arrays["tok_emb"] = arrays["tok_emb"][:, :8]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="tok_emb"):
        minilm.load(path)
    del arrays["tok_emb"]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="missing"):
        minilm.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a minilm"):
        minilm.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="no model named"):
        minilm.load("no-such-model")


def test_params_with_nan_are_rejected(model):
    params = dict(model.params)
    params["ln_f.gamma"] = params["ln_f.gamma"].copy()
    params["ln_f.gamma"][0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MiniLM(TINY, params)


def test_evaluate_returns_bits_per_byte(model):
    text = "Some held-out text, long enough to need several windows. " * 3
    bpb = minilm.evaluate(model, text)
    assert 6.0 < bpb < 10.0  # a random model is close to log2(256) = 8
    per_byte = minilm.surprisal(model, text)
    assert per_byte.shape == (len(text) - 1,)
    assert bpb == pytest.approx(per_byte.mean())
    assert minilm.evaluate(model, text, backend="reference") == pytest.approx(bpb, abs=1e-4)


def test_surprisal_windows_match_one_long_context():
    model = MiniLM.init(ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32,
                                    max_seq_len=64), seed=3)
    text = "abcdefghij" * 6  # 60 bytes: fits in one window
    log_probs = model.forward(tokens_of(text)[:-1]).astype(np.float64)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(59), tokens_of(text)[1:]] / np.log(2)
    assert_close(minilm.surprisal(model, text), expected, atol=1e-5)


def _bits_from_context(model, tokens, target, context):
    """-log2 p(tokens[target] | the `context` bytes before it), computed on its own."""
    window = tokens[max(0, target - context):target]
    return -log_softmax(model.forward(window)[-1])[tokens[target]] / np.log(2)


@pytest.mark.parametrize("stride", [1, 3, 4, 8])
@pytest.mark.parametrize("n_bytes", [2, 9, 10, 23, 40])
def test_sliding_windows_predict_every_byte_once_from_its_context(stride, n_bytes):
    # windows of max_seq_len = 8 bytes, `stride` apart: byte i is predicted from the bytes of
    # the first window that reaches it; past the first window that is its last 8 - stride.. 7
    model = MiniLM.init(ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32,
                                    max_seq_len=8), seed=5)
    tokens = tokens_of("The quick brown fox jumps over the lazy dog.")[:n_bytes]
    bits = minilm.surprisal(model, tokens.astype(np.uint8).tobytes(), stride=stride,
                            batch_size=3)
    assert bits.shape == (n_bytes - 1,)
    last_start = max(0, n_bytes - 9)
    starts = [*range(0, last_start, stride), last_start]
    for target in range(1, n_bytes):
        start = next(s for s in starts if s + 8 >= target)  # the first window reaching it
        expected = _bits_from_context(model, tokens, target, target - start)
        assert_close(bits[target - 1], expected, atol=1e-5, rtol=1e-5)


def test_default_stride_is_half_a_window_and_disjoint_windows_cost_context():
    model = minilm.load("minilm-xs")
    text = heldout_slice(3000)[0]
    assert minilm.evaluate(model, text) == minilm.evaluate(model, text, stride=64)
    # disjoint windows (stride = max_seq_len) predict a window's first bytes from little context
    assert minilm.evaluate(model, text, stride=128) > minilm.evaluate(model, text) + 0.01


@pytest.mark.parametrize("stride, words", [
    (0, "positive int"), (True, "positive int"), (2.0, "positive int"), (49, "at most"),
])
def test_bad_stride_is_refused(model, stride, words):
    with pytest.raises(ValueError, match=f"stride.*{words}"):
        minilm.surprisal(model, "some text to score", stride=stride)


@pytest.mark.parametrize("tokens, error, words", [
    (np.array([1.0, 2.0]), TypeError, "integer"),
    (np.zeros((1, 2, 3), np.int64), TypeError, "shape"),
    (np.array([], np.int64), ValueError, "empty"),
    (np.array([0, 256]), ValueError, r"\[0, 256\)"),
    (np.array([-1]), ValueError, r"\[0, 256\)"),
    (np.zeros(49, np.int64), ValueError, "max_seq_len"),
])
def test_bad_tokens(model, tokens, error, words):
    with pytest.raises(error, match=words):
        model.forward(tokens)


def test_bad_backend_and_cache(model):
    with pytest.raises(ValueError, match="backend"):
        model.forward(np.array([1, 2]), backend="gpu")
    cache = model.new_cache()
    model.forward(np.zeros(40, np.int64), cache=cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        model.forward(np.zeros(9, np.int64), cache=cache)
    with pytest.raises(ValueError, match="batch size"):
        model.forward(np.zeros((2, 1), np.int64), cache=model.new_cache())


@pytest.mark.parametrize("kwargs, error", [
    ({"max_new_tokens": -1}, ValueError), ({"temperature": -0.5}, ValueError),
    ({"temperature": float("nan")}, ValueError), ({"top_k": 0}, ValueError),
    ({"top_k": 257}, ValueError), ({"seed": 1.5}, TypeError), ({"backend": "tpu"}, ValueError),
])
def test_bad_generate_arguments(model, kwargs, error):
    with pytest.raises(error):
        minilm.generate(model, "hi", **kwargs)
    with pytest.raises(TypeError):
        minilm.generate(model, b"bytes")


@pytest.mark.parametrize("fields, words", [
    ({"d_model": 30, "n_heads": 4}, "multiple"), ({"n_layers": 0}, "positive"),
    ({"vocab_size": 2.5}, "positive"), ({"layernorm_eps": 0.0}, "layernorm_eps"),
])
def test_bad_config(fields, words):
    with pytest.raises(ValueError, match=words):
        ModelConfig(**fields)


def test_cuda_backend_without_a_device_is_a_clear_error(model):
    import numba

    from minilm import kbit
    from minilm.kernels.cuda.device import gpu_name

    if numba.config.ENABLE_CUDASIM or gpu_name() is not None:
        pytest.skip("a CUDA device (or the simulator) is present")
    with pytest.raises(NotImplementedError, match="NUMBA_ENABLE_CUDASIM=1"):
        model.forward(np.array([1, 2]), backend="cuda")
    qt = kbit.quantize(np.ones((4, 64), np.float32), bits=4)
    with pytest.raises(NotImplementedError, match="CUDA"):
        kbit.matmul(np.ones(64, np.float32), qt, backend="cuda")
