"""kbit.quantize_model / total_bits, and saving and loading a quantized model."""

import numpy as np
import pytest

import minilm
from minilm import kbit

CONFIG = minilm.ModelConfig(vocab_size=256, d_model=64, n_heads=2, n_layers=2, d_ff=256,
                            max_seq_len=64)
TEXT = "The quick brown fox jumps over the lazy dog. " * 6


@pytest.fixture(scope="module")
def model():
    """A random model with sharp predictions (scaled-up weights), so that quantization error
    shows in bits/byte."""
    base = minilm.MiniLM.init(CONFIG, seed=0)
    params = {name: (value * 8 if name.endswith(("w1", "w2", "tok_emb")) else value)
              for name, value in base.params.items()}
    return minilm.MiniLM(CONFIG, params)


def test_linear_weights_become_quantized_transposes(model):
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64)
    for name, value in qmodel.params.items():
        if name.endswith(kbit.model.LINEAR_WEIGHTS):
            assert isinstance(value, kbit.QuantizedTensor)
            assert value.shape == model.params[name].shape[::-1]
            np.testing.assert_allclose(value.dequantize().T, model.params[name],
                                       atol=0.2 * np.abs(model.params[name]).max())
        else:
            assert value is model.params[name]
    assert qmodel.meta["quantized"] == {"bits": 4, "dtype": "nf", "block_size": 64,
                                        "embeddings": False}
    assert isinstance(model.params["blocks.0.ffn.w1"], np.ndarray)  # the original is unchanged


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_forward_generate_evaluate_work(model, backend):
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64, embeddings=True)
    tokens = minilm.ByteTokenizer().encode("Hello k-bit world")
    logits = qmodel.forward(tokens, backend=backend)
    assert logits.shape == (len(tokens), 256) and np.isfinite(logits).all()
    text = minilm.generate(qmodel, "Hello", max_new_tokens=5, temperature=0, backend=backend)
    assert isinstance(text, str)
    assert np.isfinite(minilm.evaluate(qmodel, TEXT, backend=backend))


def test_cached_decoding_matches_full_forward(model):
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64)
    tokens = minilm.ByteTokenizer().encode("incremental")
    full = qmodel.forward(tokens)
    cache = qmodel.new_cache()
    steps = np.concatenate([qmodel.forward(tokens[i:i + 1], cache=cache) for i in
                            range(len(tokens))])
    np.testing.assert_allclose(steps, full, atol=2e-3 * np.abs(full).max())


def test_8_bits_is_within_a_small_bits_per_byte_of_fp32(model):
    fp32 = minilm.evaluate(model, TEXT)
    gap = {bits: abs(minilm.evaluate(kbit.quantize_model(model, bits, "int", 64), TEXT) - fp32)
           for bits in (3, 8)}
    assert gap[8] < 0.01 and gap[8] < gap[3] / 5, (fp32, gap)


def test_total_bits(model):
    n_params = model.n_params
    assert kbit.total_bits(model) == 32 * n_params
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64)
    linear = sum(v.size for v in qmodel.params.values() if isinstance(v, kbit.QuantizedTensor))
    assert kbit.total_bits(qmodel) == 32 * (n_params - linear) + 4.5 * linear
    everything = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64, embeddings=True)
    assert kbit.total_bits(everything) < kbit.total_bits(qmodel)
    with pytest.raises(TypeError, match="must be a minilm.MiniLM"):
        kbit.total_bits({"w": np.ones(3)})


def test_save_and_load_keep_the_packed_form(model, tmp_path):
    qmodel = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64, embeddings=True)
    path = qmodel.save(tmp_path / "q4.npz")
    loaded = minilm.load(path)
    for name, value in qmodel.params.items():
        if isinstance(value, kbit.QuantizedTensor):
            other = loaded.params[name]
            assert isinstance(other, kbit.QuantizedTensor)
            assert (other.shape, other.bits, other.dtype, other.block_size) == (
                value.shape, value.bits, value.dtype, value.block_size)
            np.testing.assert_array_equal(other.packed, value.packed)
            np.testing.assert_array_equal(other.scales, value.scales)
    tokens = minilm.ByteTokenizer().encode("same logits")
    np.testing.assert_array_equal(loaded.forward(tokens), qmodel.forward(tokens))
    float_size = model.save(tmp_path / "fp32.npz").stat().st_size
    size = path.stat().st_size  # ~4.5/32 of float32, plus float LayerNorms, biases, headers
    assert kbit.total_bits(qmodel) / 8 < size < 0.2 * float_size


def test_bad_arguments(model):
    with pytest.raises(TypeError, match="must be a minilm.MiniLM"):
        kbit.quantize_model(model.params)
    with pytest.raises(ValueError, match="block_size=128 must divide d_model=64"):
        kbit.quantize_model(model, 4, "nf", 128)
    with pytest.raises(ValueError, match="unknown dtype"):
        kbit.quantize_model(model, 4, "float")
    with pytest.raises(ValueError, match="already quantized"):
        kbit.quantize_model(kbit.quantize_model(model, 4))
    broken = kbit.qt_to_arrays("w", kbit.quantize(np.ones((4, 16), np.float32), 4))
    del broken["w::scales"]
    with pytest.raises(ValueError, match="needs the parts packed, scales and meta"):
        kbit.qt_from_arrays(broken)
