"""The panel functions of chapters 6-12 (minilm.widgets.ch06_training ... ch12_using), headless.

Each plain function is called directly (data, text, matplotlib Figures); a few panels are built
and a control moved, to check that the thin ipywidgets layer redraws without errors.
"""

import numpy as np
import pytest
from matplotlib.figure import Figure

import minilm
from minilm import kbit, scaling
from minilm.bench_cases import STEP_PARTS
from minilm.widgets import (
    ch06_training,
    ch07_kbit_numbers,
    ch08_packing,
    ch09_kbit_matmul,
    ch10_scaling,
    ch11_cuda,
    ch12_using,
)

TINY = minilm.ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=32)


@pytest.fixture(scope="module")
def weight():
    return np.random.default_rng(0).standard_normal((32, 128)).astype(np.float32) * 0.1


@pytest.fixture(scope="module")
def tiny_model():
    return minilm.MiniLM.init(TINY, seed=0)


def _controls(box):
    """The controls of a `common.panel` VBox (its first child is the HBox of controls)."""
    return box.children[0].children


# ----------------------------------------------------------------------------- chapter 6

def test_schedule_and_loss_figures():
    assert isinstance(ch06_training.schedule_figure(100, 1e-3, 10, 0.1), Figure)
    log = [{"step": s, "loss": 5.0 - s / 10, "tokens_per_s": 1000.0,
            "val_bpb": 6.0 if s % 5 == 0 else None} for s in range(1, 11)]
    fig = ch06_training.loss_figure(log, {"unigram": 4.8, "4-gram": 2.4}, total_steps=10)
    assert len(fig.axes) == 1 and "step 10" in fig.axes[0].get_title()


def test_short_training_logs_every_step():
    settings = minilm.train.TrainConfig(steps=3, batch_size=2, eval_every=0, eval_bytes=64)
    seen = []
    log = ch06_training.short_training(TINY, settings, on_step=lambda entries: seen.append(
        len(entries)))
    assert [e["step"] for e in log] == [1, 2, 3] and seen == [1, 2, 3]
    assert log[-1]["val_bpb"] is not None and all(np.isfinite(e["loss"]) for e in log)


def test_family_table_and_text():
    rows = ch06_training.family_table()  # the shipped checkpoints (maybe none yet)
    assert [r["name"] for r in rows] == minilm.available_models()
    fake = [{"name": "a", "params": 1000, "d_model": 8, "n_layers": 1, "n_heads": 1,
             "max_seq_len": 16, "final_heldout_bpb": 3.0, "wall_time_s": 60.0,
             "tokens_seen": 10, "command": "minilm train --preset a"}]
    text = ch06_training.format_family(fake, {"unigram": 4.8})
    assert "minilm train --preset a" in text and "unigram baseline" in text
    assert isinstance(ch06_training.family_figure(fake, {"unigram": 4.8}), Figure)


def test_backward_timings_check_and_time():
    results = ch06_training.backward_timings(heads=2, seq_len=16, dim=8, rows=8, width=16,
                                             repeats=1)
    assert [r.variant for r in results] == ["numpy reference", "numba"] * 2
    assert all(r.seconds > 0 for r in results)


def test_step_profile_table_runs_the_bench_case():
    text = ch06_training.step_profile_table()
    for label, _ in STEP_PARTS:
        assert f"minilm-s B=16 T=128: {label}" in text


# ----------------------------------------------------------------------------- chapter 7

def test_quantization_report_matches_kbit(weight):
    report = ch07_kbit_numbers.quantization_report(weight, 3, "nf", 64)
    expected = kbit.error_stats(weight, kbit.quantize(weight, 3, "nf", 64))
    assert report["sqnr_db"] == pytest.approx(expected["sqnr_db"])
    assert report["bits_per_param"] == pytest.approx(3.5)
    assert 1 <= report["levels_used"] <= 8
    assert ch07_kbit_numbers.describe(report).startswith("3-bit nf, blocks of 64: 3.500")


def test_scaled_values_are_what_the_codebook_sees(weight):
    scaled = ch07_kbit_numbers.scaled_values(weight, 64)
    assert scaled.shape == (weight.size,) and np.abs(scaled).max() == pytest.approx(1.0)
    blocks = np.abs(scaled.reshape(-1, 64)).max(axis=1)
    np.testing.assert_allclose(blocks, 1.0, rtol=1e-6)  # every block reaches its absmax


def test_sqnr_grows_with_bits(weight):
    curves = ch07_kbit_numbers.sqnr_curves(weight, 64)
    assert set(curves) == set(kbit.DTYPES)
    assert all(np.all(np.diff(curves[d]) > 0) for d in ("int", "nf"))


def test_chapter7_figures(weight):
    for block in (64, None):
        fig = ch07_kbit_numbers.codebook_figure(weight, 4, "int", block)
        assert len(fig.axes) == 2
    assert isinstance(ch07_kbit_numbers.codebooks_figure(3), Figure)
    assert isinstance(ch07_kbit_numbers.block_size_figure(weight, 4, (16, 64, None)), Figure)
    with pytest.raises(ValueError, match="no parameter"):
        ch07_kbit_numbers.trained_weight(minilm.MiniLM.init(TINY), "nope")


def test_chapter7_panel_redraws_when_bits_move(weight):
    box = ch07_kbit_numbers.kbit_panel(weight)
    bits = next(c for c in _controls(box) if c.description == "bits")
    bits.value = 6
    assert bits.value == 6


# ----------------------------------------------------------------------------- chapter 8

def test_bit_layout_is_the_design_layout():
    codes = np.array([1, 2, 3, 4, 5, 6, 7, 8], np.uint8)
    layout = ch08_packing.bit_layout(codes, 4)
    assert list(layout["packed"]) == [c0 | c1 << 4 for c0, c1 in zip(codes[::2], codes[1::2],
                                                                       strict=True)]
    odd = ch08_packing.bit_layout(np.array([7, 0, 5], np.uint8), 3)  # 9 bits -> 2 bytes
    assert odd["bit_values"].size == 16 and list(odd["owner"][9:]) == [-1] * 7
    assert list(odd["bit_values"][:3]) == [1, 1, 1] and list(odd["bit_values"][6:9]) == [1, 0, 1]


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_bit_layout_figure_and_text(bits):
    assert isinstance(ch08_packing.bit_layout_figure(bits), Figure)
    assert f"kbit.pack(codes, {bits})" in ch08_packing.describe_layout(bits)
    assert ch08_packing.example_codes(bits).max() < 2**bits


def test_pack_throughput_rows():
    rows = ch08_packing.pack_throughput(n=4096, bits_list=(3, 4), repeats=1)
    assert {(r["bits"], r["op"], r["backend"]) for r in rows} == {
        (b, op, e) for b in (3, 4) for op in ("pack", "unpack") for e in ("reference", "cpu")}
    assert all(r["gb_s"] > 0 for r in rows)
    assert isinstance(ch08_packing.throughput_figure(rows), Figure)


def test_chapter8_panel():
    box = ch08_packing.layout_panel()
    _controls(box)[0].value = 5


# ----------------------------------------------------------------------------- chapter 9

def test_intensity():
    assert ch09_kbit_matmul.intensity(32, 1) == 0.5
    assert ch09_kbit_matmul.intensity(4.5, 2) == pytest.approx(32 / 4.5)  # 4 FLOP / 4.5/8 B


@pytest.mark.parametrize(("bits", "rows"), [(4, 1), (5, 1), (4, 16)])
def test_measure_matmul_checks_and_times(bits, rows):
    m = ch09_kbit_matmul.measure_matmul(bits, rows, (128, 256), repeats=1)
    assert m["kbit_s"] > 0 and m["float32_s"] > 0
    assert m["float32_bytes"] == 128 * 256 * 4
    assert m["kbit_bytes"] == 128 * 256 * bits // 8 + 128 * 256 // 64 * 4
    assert ("tiles" in m["path"]) == (rows > 8)
    assert "kbit.matmul" in ch09_kbit_matmul.describe(m)


def test_chapter9_figure_and_versions():
    fig = ch09_kbit_matmul.matmul_figure(4, 1, (128, 256))
    assert len(fig.axes) == 2
    table = ch09_kbit_matmul.versions_table(4, (64, 128), repeats=1)
    assert [r["version"] for r in table] == list(kbit.MATMUL_VERSIONS)
    peaks = ch09_kbit_matmul.machine_peaks()
    assert peaks["copy_gb_s"] > 0 and peaks["blas_gflop_s"] > 0


# ---------------------------------------------------------------------------- chapter 10

def _scaling_rows():
    rows = []
    for model, params in (("a", 1000), ("b", 4000)):
        for bits, dtype, block in ((32, "float", None), (8, "nf", 64), (4, "nf", 64),
                                   (4, "nf", None), (4, "int", 64), (3, "nf", 64)):
            per = bits + (0.5 if block else 0)
            loss = 2.0 + 1000 / params + {3: 0.4, 4: 0.05}.get(bits, 0) + (
                0.2 if block is None and dtype != "float" else 0) + (0.1 if dtype == "int" else 0)
            rows.append({"model": model, "n_params": params, "bits": bits, "dtype": dtype,
                         "block_size": block, "format": f"{dtype}{bits}",
                         "total_bits": int(params * per), "bpb": loss})
    return rows


def test_budget_and_comparison():
    rows = _scaling_rows()
    low, high = ch10_scaling.budget_range(rows)
    assert 2**low == pytest.approx(min(r["total_bits"] for r in rows))
    assert "best is k = 4 (nf4) of b" in ch10_scaling.describe_budget(rows, 4.5 * 4000)
    assert "best is k = 8" in ch10_scaling.describe_budget(rows, 2**high)  # ties float32
    assert "no cell fits" in ch10_scaling.describe_budget(rows, 10)
    comparison = ch10_scaling.paper_comparison(rows)
    assert "per tensor minus block 64 (nf), mean over models and k: +0.2000" in comparison
    assert "int minus nf (block 64), mean over models and k: +0.1000" in comparison
    assert "nf8 (block 64) minus float32, mean over models: +0.0000" in comparison
    fig = ch10_scaling.budget_figure(rows, high)
    assert any("best within budget" in t.get_text() for t in fig.axes[0].get_legend().texts)


def test_results_reads_a_written_table(tmp_path):
    rows = [dict.fromkeys(scaling.COLUMNS, 1) for _ in range(2)]
    scaling.write_table(rows, tmp_path)
    assert ch10_scaling.results(tmp_path / "table.json") == rows
    with pytest.raises(FileNotFoundError):
        ch10_scaling.results(tmp_path / "missing.json")


# ---------------------------------------------------------------------------- chapter 11

def test_thread_layout_and_coalescing():
    layout = ch11_cuda.thread_layout(10, 4)
    assert layout["n_blocks"] == 3 and layout["idle_threads"] == 2
    assert list(layout["block"]) == [0] * 4 + [1] * 4 + [2] * 2
    assert list(layout["thread"][4:8]) == [0, 1, 2, 3]
    assert [ch11_cuda.segments_touched(s) for s in (1, 2, 4, 32)] == [1, 2, 4, 32]
    with pytest.raises(ValueError):
        ch11_cuda.thread_layout(0, 4)
    assert isinstance(ch11_cuda.grid_figure(40, 8), Figure)
    assert len(ch11_cuda.coalescing_figure(3).axes) == 2


@pytest.mark.slow
def test_simulated_run_checks_the_cuda_kernels():
    out = ch11_cuda.run_simulated()
    assert "simulator" in out and "0:(0,0) 1:(0,1) 2:(0,2) 3:(0,3) 4:(1,0)" in out
    assert out.count("max |error| vs reference") == 3


# ---------------------------------------------------------------------------- chapter 12

def test_scoring_and_classifying(tiny_model):
    bits = ch12_using.text_bits(tiny_model, "hello", context="\n")
    assert bits == pytest.approx(minilm.surprisal(tiny_model, "\nhello").sum())
    ranked = ch12_using.rank_texts(tiny_model, ["abc", "zzzz", "hello"])
    assert [r["bits"] for r in ranked] == sorted(r["bits"] for r in ranked)
    assert ch12_using.classify(tiny_model, "x = 1\n") in ch12_using.EXAMPLE_CLASSES
    fraction, results = ch12_using.accuracy(tiny_model, ch12_using.LABELLED_TEXTS[:2])
    assert 0 <= fraction <= 1 and len(results) == 2
    assert "<-" in ch12_using.describe_scores(tiny_model, "Der Hund.")
    with pytest.raises(ValueError):
        ch12_using.text_bits(tiny_model, "")


def test_surprisal_figure(tiny_model):
    fig = ch12_using.surprisal_figure(tiny_model, "héllo\nworld")
    assert "bits/byte" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="2 bytes"):
        ch12_using.surprisal_figure(tiny_model, "a")
