"""The panels of chapters 0-5 (`minilm.widgets`), driven through their plain functions.

A tiny random model saved to a temporary file stands in for the shipped ones (`minilm.load`
accepts a path), so these tests need no checkpoint; each panel is also built once headless.
"""

import numpy as np
import pytest
from matplotlib.figure import Figure

import minilm
from minilm.generate import sample_token, sampling_probs
from minilm.widgets import (
    ch00_setup,
    ch01_numba,
    ch02_tokens,
    ch03_attention,
    ch04_block,
    ch05_generation,
    common,
)

CONFIG = minilm.ModelConfig(d_model=16, n_heads=2, n_layers=2, d_ff=64, max_seq_len=32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.npz"
    minilm.MiniLM.init(CONFIG, seed=0).save(path)
    return str(path)


@pytest.fixture(scope="module")
def model(model_path):
    return common.load_model(model_path)


def test_load_model_is_cached(model_path):
    assert common.load_model(model_path) is common.load_model(model_path)


def test_trace_records_the_models_own_forward(model):
    tokens = minilm.ByteTokenizer().encode("hello there")
    tr = common.trace(model, tokens)
    np.testing.assert_array_equal(tr.logits, model.forward(tokens, backend="reference"))
    assert [c.name for c in tr.calls].count("attention") == CONFIG.n_layers
    weights = tr.attention_weights()
    t = len(tokens)
    assert len(weights) == CONFIG.n_layers and weights[0].shape == (CONFIG.n_heads, t, t)
    np.testing.assert_allclose(weights[1].sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(weights[0], k=1) == 0)  # causal: nothing above the diagonal
    stream = tr.residual_stream()
    assert [label for label, _ in stream] == ["embeddings", "0: + attention", "0: + FFN",
                                              "1: + attention", "1: + FFN"]
    p = model.params
    np.testing.assert_allclose(stream[0][1], p["tok_emb"][tokens] + p["pos_emb"][:t])


def test_byte_label():
    assert [common.byte_label(b) for b in (ord("a"), 32, 10, 0xE9)] == ["a", "␣", "⏎", "xE9"]


def test_setup_checks():
    rows = ch00_setup.setup_checks()
    assert {"Python", "Numba compiles", "GPU", "trained models"} <= {r[0] for r in rows}
    assert all(status in ch00_setup.MARKS for _, status, _ in rows)
    assert dict((r[0], r[1]) for r in rows)["Numba compiles"] == ch00_setup.OK
    assert "<table>" in ch00_setup.checks_html(rows)


def test_numpy_vs_numba_and_its_figure():
    timings = ch01_numba.numpy_vs_numba(sizes_log2=(10, 12), repeats=1)
    assert list(timings["sizes"]) == [1024, 4096]
    assert np.all(timings["numpy"] > 0) and np.all(timings["numba"] > 0)
    assert isinstance(ch01_numba.timings_figure(timings, 11), Figure)


def test_first_call_and_later_and_contention():
    from numba import njit

    first, later = ch01_numba.first_call_and_later(njit(lambda a: a + 1), 1.0, repeats=2)
    assert first > later > 0
    assert ch01_numba.blas_then_numba(rounds=2, size=32, limit_blas=True) > 0


def test_tokens_and_shapes(model):
    assert ch02_tokens.token_rows("aé") == [("a", [97]), ("é", [0xC3, 0xA9])]
    assert "&lt;" in ch02_tokens.tokens_html("<b>")
    t = 5
    shapes = dict((name, shape) for name, shape, _ in ch02_tokens.shapes(CONFIG, t, batch=3))
    logits = model.forward(np.zeros((3, t), np.int64), backend="reference")
    assert shapes["logits = ln_f(x) @ tok_emb.T"] == logits.shape
    assert shapes["tok_emb"] == model.params["tok_emb"].shape
    assert "T=5" in ch02_tokens.shapes_html(CONFIG, t)


def test_embedding_figures_and_lookup(model):
    tokens = minilm.ByteTokenizer().encode("abc")
    assert isinstance(ch02_tokens.embedding_figure(model, tokens), Figure)
    assert isinstance(ch02_tokens.byte_map_figure(model), Figure)
    timing = ch02_tokens.lookup_vs_one_hot(model, seq_len=16, repeats=1)
    assert timing["same"] == 1.0 and timing["lookup"] > 0


def test_attention_maps_of_a_prefix_are_the_top_left_corner(model_path):
    tokens, full = ch03_attention.attention_maps(model_path, "abcdefgh")
    _, prefix = ch03_attention.attention_maps(model_path, "abcd")
    np.testing.assert_allclose(prefix[1], full[1][:, :4, :4], rtol=1e-5, atol=1e-7)
    for head in ("all", 1):
        fig = ch03_attention.attention_figure(full, tokens, 1, head, seq_len=6)
        assert isinstance(fig, Figure)


def test_attention_maps_crop_long_prompts(model_path):
    tokens, weights = ch03_attention.attention_maps(model_path, "x" * 100)
    assert len(tokens) == CONFIG.max_seq_len and weights[0].shape[-1] == CONFIG.max_seq_len


def test_attention_timings_cover_every_version():
    from minilm.kernels.attention import ATTENTION_VERSIONS

    timings = ch03_attention.attention_timings(seq_lens=(16, 40), heads=2, dim=8, repeats=1)
    assert set(timings) == {"T", "numpy reference", *ATTENTION_VERSIONS}
    assert all(len(v) == 2 for v in timings.values())
    assert isinstance(ch03_attention.timings_figure(timings), Figure)
    assert isinstance(ch03_attention.scaling_figure(dims=(4, 16)), Figure)


def test_block_activations(model_path, model):
    acts = ch04_block.block_activations(model_path, "hello world")
    t = len(acts["tokens"])
    assert len(acts["stream"]) == 2 * CONFIG.n_layers + 1
    assert [h.shape for h in acts["hidden"]] == [(t, CONFIG.d_ff)] * CONFIG.n_layers
    np.testing.assert_allclose(acts["normed"][-1].mean(axis=-1), model.params["ln_f.beta"].mean(),
                               atol=1e-5)  # gamma = 1 at init: LayerNorm output mean = mean(beta)
    for point in (0, 2 * CONFIG.n_layers):
        assert isinstance(ch04_block.block_figure(acts, point), Figure)
    assert isinstance(ch04_block.ffn_figure(acts), Figure)
    assert isinstance(ch04_block.gelu_figure(), Figure)


def test_block_kernel_timings():
    results = ch04_block.kernel_timings(t=8, c=16, f=32, repeats=1)
    assert [r.variant for r in results] == ["numpy reference", "numba cpu"] * 3
    assert all(r.seconds > 0 for r in results)


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, 5), (1.5, 40)])
def test_sampling_probs_is_what_sample_token_draws_from(temperature, top_k):
    logits = np.random.default_rng(0).standard_normal(256).astype(np.float32) * 2
    probs = sampling_probs(logits, temperature, top_k)
    assert probs.sum() == pytest.approx(1.0)
    if top_k is not None:
        assert np.count_nonzero(probs) == top_k
    rng = np.random.default_rng(1)
    draws = [sample_token(logits, temperature, top_k, rng) for _ in range(4000)]
    frequencies = np.bincount(draws, minlength=256) / len(draws)
    assert np.abs(frequencies - probs).max() < 0.03


def test_sampling_probs_greedy():
    logits = np.array([0.1, 3.0, -1.0])
    np.testing.assert_array_equal(sampling_probs(logits, 0, None), [0, 1, 0])


def test_generation_functions(model, model_path):
    assert isinstance(ch05_generation.next_byte_figure(model, "ab", 0.5, 3), Figure)
    kv = ch05_generation.kv_cache_timings(model, lengths=(4, 8), repeats=1)
    assert kv["n"].tolist() == [4, 8] and np.all(kv["cache"] > 0)
    assert isinstance(ch05_generation.kv_cache_figure(kv), Figure)
    rows = ch05_generation.family_samples("a", n=5, names=[model_path])
    assert rows[0]["params"] == model.n_params and rows[0]["heldout_bpb"] is None
    assert "<table>" in ch05_generation.family_html("a", rows)


def test_panels_build_and_redraw(model_path, monkeypatch):
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.setattr(minilm, "available_models", lambda: [model_path])
    timings = {"sizes": np.array([1024, 2048]), "numpy": np.array([2e-3, 4e-3]),
               "numba": np.array([1e-3, 1e-3])}
    panels = [ch00_setup.first_look_panel(model_path), ch01_numba.timings_panel(timings),
              ch02_tokens.embedding_panel(model_path), ch03_attention.attention_panel(model_path),
              ch04_block.block_panel(model_path), ch05_generation.generation_panel(model_path),
              ch05_generation.family_panel()]
    for box in panels:
        assert isinstance(box, ipywidgets.VBox)
        *controls, status = box.children[0].children
        for slider in (c for c in controls if isinstance(c, ipywidgets.IntSlider)):
            slider.value = slider.max  # redraws with the new value
        assert status.value == ""  # "updating" is cleared once the redraw is done
