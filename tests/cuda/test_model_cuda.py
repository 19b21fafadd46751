"""The whole model on backend="cuda": the same logits as the CPU backend (float32; k-bit against
the reference), decoding with the KV cache, generate and evaluate; weights copied once."""

import numpy as np
import pytest

import minilm
from minilm import kbit
from minilm.kernels.cuda import weights

# tiny, so that the simulator runs it in seconds; d_model and d_ff multiples of the block size 16
CONFIG = minilm.ModelConfig(vocab_size=16, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                            max_seq_len=16)


@pytest.fixture(scope="module")
def model():
    return minilm.MiniLM.init(CONFIG, seed=3)


@pytest.fixture(scope="module")
def qmodel(model):
    return kbit.quantize_model(model, bits=4, dtype="nf", block_size=16)


def test_forward_matches_cpu(model):
    tokens = np.array([[1, 5, 2, 9], [3, 15, 7, 1]])
    logits = model.forward(tokens, backend="cuda")
    assert logits.shape == (2, 4, 16) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, model.forward(tokens, backend="cpu"), rtol=1e-4,
                               atol=1e-4)


def test_quantized_forward_matches_reference(qmodel):
    tokens = np.array([4, 1, 12])
    np.testing.assert_allclose(qmodel.forward(tokens, backend="cuda"),
                               qmodel.forward(tokens, backend="reference"), rtol=1e-4, atol=1e-4)


def test_kv_cache_decoding_matches_full_forward(model):
    tokens = np.array([2, 7, 1, 4])
    cache = model.new_cache()
    steps = [model.forward(tokens[:2], backend="cuda", cache=cache)]
    steps += [model.forward(tokens[i:i + 1], backend="cuda", cache=cache) for i in (2, 3)]
    np.testing.assert_allclose(np.concatenate(steps), model.forward(tokens, backend="cpu"),
                               rtol=1e-4, atol=1e-4)


def test_generate_and_evaluate_match_reference(model, qmodel):
    prompt = np.array([1, 2, 3])
    on = {b: list(minilm.generate_tokens(model, prompt, 2, temperature=0, backend=b))
          for b in ("reference", "cuda")}
    assert on["cuda"] == on["reference"]
    text = bytes([1, 4, 9, 2, 5])
    assert minilm.evaluate(qmodel, text, backend="cuda") == pytest.approx(
        minilm.evaluate(qmodel, text, backend="reference"), rel=1e-4)


def test_weights_stay_on_the_device(model):
    tokens = np.array([1, 2])
    model.forward(tokens, backend="cuda")
    resident = weights._MODELS[model]
    copies = dict(resident.copies)
    assert len(copies) >= len(model.params) - 1  # pos_emb is sliced on the host
    model.forward(tokens, backend="cuda")
    assert weights._MODELS[model] is resident and resident.copies == copies  # no new copies
    edited = minilm.MiniLM(model.config, dict(model.params))
    edited.forward(tokens, backend="cuda")
    edited.params["ln_f.beta"] = np.ones(16, np.float32)  # a replaced parameter is noticed
    np.testing.assert_allclose(edited.forward(tokens, backend="cuda"),
                               edited.forward(tokens, backend="cpu"), rtol=1e-4, atol=1e-4)
