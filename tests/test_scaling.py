"""The k-bit scaling-law experiment: sweep, cache, total bits, verdict, figures, command."""

import json
import math

import numpy as np
import pytest

import minilm
from minilm import kbit, scaling, scaling_plots
from minilm.cli import main
from minilm.corpus import Corpus

TEXT = Corpus("fox", "The quick brown fox jumps over the lazy dog. " * 12)
# Every data type and block size, two k, on 256 bytes: 2 + 2*3*3 = 20 cells per model.
PLAN = scaling.Plan(bits=(3, 8), dtypes=("int", "fp", "nf"), block_sizes=(None, 256, 64),
                    n_bytes=256)
SMALL = scaling.Plan(bits=(4,), dtypes=("nf",), block_sizes=(64,), n_bytes=128)  # 3 cells


def tiny(d_model, n_layers, seed):
    config = minilm.ModelConfig(vocab_size=256, d_model=d_model, n_heads=2, n_layers=n_layers,
                                d_ff=2 * d_model, max_seq_len=32)
    return minilm.MiniLM.init(config, seed=seed)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """Two random-init models saved as .npz files: 'a' (d_model 16) and 'b' (32, 2 layers)."""
    folder = tmp_path_factory.mktemp("family")
    return [str(tiny(16, 1, 0).save(folder / "a.npz")), str(tiny(32, 2, 1).save(folder / "b.npz"))]


@pytest.fixture(scope="module")
def rows(family):
    return scaling.sweep(family, PLAN, workers=1, progress=False, corpus=TEXT)


def count_evaluations(monkeypatch):
    calls = []
    original = scaling.evaluate_cell

    def counting(model, cell, data, embeddings=True):
        calls.append(cell)
        return original(model, cell, data, embeddings)

    monkeypatch.setattr(scaling, "evaluate_cell", counting)
    return calls


def test_sweep_produces_every_column_and_cell(rows):
    assert len(rows) == 2 * len(PLAN.cells()) == 40
    for row in rows:
        assert tuple(row) == scaling.COLUMNS
        assert all(row[column] is not None for column in scaling.COLUMNS if column != "block_size")
        assert 0 < row["bpb"] < 20 and row["corpus_sha256"] == TEXT.sha256
        assert row["n_bytes"] == 256 and row["total_bits"] > 0
    assert [r["model"] for r in rows] == ["a"] * 20 + ["b"] * 20
    assert {(r["bits"], r["dtype"], r["block_size"]) for r in rows} == set(PLAN.cells())
    by_format = {(r["model"], r["format"]): r for r in rows}
    for name in ("a", "b"):
        float32 = by_format[name, "float32"]
        assert float32["total_bits"] == 32 * float32["n_params"]
        assert by_format[name, "float16"]["bpb"] == pytest.approx(float32["bpb"], abs=1e-3)
        assert by_format[name, "nf3 tensor"]["total_bits"] < by_format[name, "nf3 b64"][
            "total_bits"] < by_format[name, "nf8 b64"]["total_bits"]


def test_simulated_cell_equals_the_fused_k_bit_model():
    model = tiny(64, 1, 2)
    data = TEXT.text.encode()[:200]
    cell = scaling.evaluate_cell(model, scaling.Cell(4, "nf", 64), data)
    fused = kbit.quantize_model(model, bits=4, dtype="nf", block_size=64, embeddings=True)
    assert cell["total_bits"] == kbit.total_bits(fused)
    assert cell["bpb"] == pytest.approx(minilm.evaluate(fused, data, backend="reference"),
                                        abs=1e-4)


def test_total_bits_is_exact_for_a_hand_counted_model():
    # d_model 16, d_ff 32, one layer, 16 positions. Quantized (k bits): tok_emb 256*16 = 4096,
    # pos_emb 16*16 = 256, w_qkv 16*48 = 768, w_out 16*16 = 256, w1 and w2 16*32 = 512 each:
    # 6400 values. Float32 always: b_qkv 48, b_out 16, b1 32, b2 16, 3 LayerNorms 2*16 each:
    # 208 values, 32 * 208 = 6656 bits.
    config = minilm.ModelConfig(vocab_size=256, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                                max_seq_len=16)
    model = minilm.MiniLM.init(config, seed=0)
    assert model.n_params == 6400 + 208
    expected = {
        (32, "float", None): 32 * 6608,
        (16, "float", None): 16 * 6400 + 6656,
        (4, "nf", None): 4 * 6400 + 32 * 6 + 6656,  # one scale per tensor
        # blocks of 64: 64 + 4 + 12 + 4 + 8 + 8 = 100 scales
        (4, "nf", 64): 4 * 6400 + 32 * 100 + 6656,
        # blocks of 256: 16 + 1 + 3 + 1 + 2 + 2 = 25 scales
        (3, "int", 256): 3 * 6400 + 32 * 25 + 6656,
    }
    for cell, bits in expected.items():
        assert scaling.quantized_copy(model, scaling.Cell(*cell))[1] == bits, cell
    # without the embeddings, tok_emb and pos_emb (4352 values) stay float32
    assert scaling.quantized_copy(model, scaling.Cell(4, "nf", 64), embeddings=False)[1] == \
        4 * 2048 + 32 * 32 + 32 * (208 + 4352)


def test_cache_hits_do_not_reevaluate(family, tmp_path, monkeypatch):
    cache = tmp_path / "cache.jsonl"
    first = scaling.sweep(family, SMALL, cache=cache, progress=False, corpus=TEXT)
    calls = count_evaluations(monkeypatch)
    again = scaling.sweep(family, SMALL, cache=cache, progress=False, corpus=TEXT)
    assert calls == [] and again == first
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # lost 2 rows, one cut short
    third = scaling.sweep(family, SMALL, cache=cache, progress=False, corpus=TEXT)
    assert len(calls) == 2 and [r["bpb"] for r in third] == [r["bpb"] for r in first]


def test_a_changed_corpus_hash_invalidates(family, tmp_path, monkeypatch):
    cache = tmp_path / "cache.jsonl"
    scaling.sweep(family[:1], SMALL, cache=cache, progress=False, corpus=TEXT)
    calls = count_evaluations(monkeypatch)
    changed = Corpus("fox", TEXT.text + "!")  # same first 128 bytes, another sha256
    rows = scaling.sweep(family[:1], SMALL, cache=cache, progress=False, corpus=changed)
    assert len(calls) == len(SMALL.cells())
    assert {r["corpus_sha256"] for r in rows} == {changed.sha256}
    retrained = tiny(16, 1, 5).save(tmp_path / "a.npz")  # same name, other weights
    scaling.sweep([str(retrained)], SMALL, cache=cache, progress=False, corpus=changed)
    assert len(calls) == 2 * len(SMALL.cells())


def test_worker_processes_give_the_same_rows(family):
    inline = scaling.sweep(family, SMALL, workers=1, progress=False, corpus=TEXT)
    pooled = scaling.sweep(family, SMALL, workers=2, progress=False, corpus=TEXT)
    assert [(r["model"], r["format"]) for r in pooled] == [(r["model"], r["format"])
                                                          for r in inline]
    np.testing.assert_allclose([r["bpb"] for r in pooled], [r["bpb"] for r in inline],
                               atol=1e-5)


def row(model, bits, total_bits, bpb, dtype="nf"):
    return {"model": model, "bits": bits, "dtype": dtype, "block_size": 64,
            "format": f"{dtype}{bits}", "total_bits": total_bits, "bpb": bpb}


def test_pareto_front_and_best_k_for_budget():
    table = [row("s", 32, 3200, 2.0, "float"), row("s", 4, 450, 2.3), row("s", 3, 350, 3.1),
             row("m", 4, 900, 2.1), row("m", 8, 1700, 2.05), row("m", 3, 700, 2.6)]
    front = scaling_plots.pareto_front(table)
    assert [(r["model"], r["bits"]) for r in front] == [("s", 3), ("s", 4), ("m", 4),
                                                        ("m", 8), ("s", 32)]
    assert scaling_plots.best_k_for_budget(table, 1000)["bits"] == 4
    assert scaling_plots.best_k_for_budget(table, 700)["model"] == "s"
    assert scaling_plots.best_k_for_budget(table, 350)["bits"] == 3
    assert scaling_plots.budgets(table) == [512, 1024, 2048, 4096]
    with pytest.raises(ValueError, match="smallest needs"):
        scaling_plots.best_k_for_budget(table, 100)
    with pytest.raises(ValueError, match="budget_bits"):
        scaling_plots.best_k_for_budget(table, -1)
    verdict = scaling_plots.format_verdict(table)
    assert "Pareto front: 5 cells; k on it: 4 (2x)" in verdict


def test_figures_are_headless_with_labelled_log_axes(rows, tmp_path):
    for fig in (scaling_plots.scaling_figure(rows), scaling_plots.effect_figure(rows, bits=(3, 8))):
        for ax in fig.axes:
            assert ax.get_xscale() == "log" and "total model bits" in ax.get_xlabel()
            assert "bits/byte" in ax.get_ylabel() and ax.get_legend() is not None
    assert len(scaling_plots.effect_figure(rows, bits=(3, 8)).axes) == 4
    paths = scaling_plots.save_figures(rows, tmp_path)
    assert [p.name for p in paths] == ["scaling.png", "effects.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "k=8" in scaling_plots.summary(rows)


def test_table_round_trip(rows, tmp_path):
    csv_path, json_path = scaling.write_table(rows, tmp_path)
    assert csv_path.read_text().splitlines()[0] == ",".join(scaling.COLUMNS)
    assert len(csv_path.read_text().splitlines()) == 1 + len(rows)
    assert scaling.read_table(json_path) == json.loads(json.dumps(rows))


def test_cli_quick_writes_table_figures_and_verdict(family, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(scaling, "QUICK", scaling.Plan(bits=(3, 4), dtypes=("int", "nf"),
                                                       block_sizes=(None, 64), n_bytes=512))
    out = tmp_path / "out"
    code = main(["scaling", "--quick", "--models", *family, "--out", str(out), "--workers", "1",
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Verdict" in printed and "Pareto front" in printed
    for name in ("table.csv", "table.json", "scaling.png", "effects.png", "cache.jsonl"):
        assert (out / name).is_file(), name
    table = scaling.read_table(out / "table.json")
    assert len(table) == 2 * len(scaling.QUICK.cells())
    assert {r["n_bytes"] for r in table} == {scaling.QUICK.n_bytes}


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "workers must be a positive int"),
    (["--models", "no-such-model"], "no model named"),
    (["--out", "FILE"], "must be a folder"),
])
def test_cli_bad_arguments_give_one_clear_line(args, words, family, tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    args = [str(tmp_path / a) if a == "FILE" else a for a in args]
    base = ["scaling", "--models", *family, "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(base + args) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, words", [
    ({"bits": (9,)}, ValueError, "bits must be in 2..8"),
    ({"bits": 4}, ValueError, "non-empty tuple"),
    ({"dtypes": ("float",)}, ValueError, "unknown dtype"),
    ({"block_sizes": (7,)}, ValueError, "block_size"),
    ({"n_bytes": 1}, ValueError, "n_bytes"),
    ({"embeddings": "yes"}, TypeError, "embeddings"),
])
def test_bad_plans_are_refused(kwargs, error, words):
    with pytest.raises(error, match=words):
        scaling.Plan(**kwargs)


def test_bad_sweep_arguments_are_refused(family, monkeypatch):
    with pytest.raises(ValueError, match="non-empty list"):
        scaling.sweep(family[0], SMALL, corpus=TEXT)
    with pytest.raises(TypeError, match="plan must be"):
        scaling.sweep(family, "quick", corpus=TEXT)
    with pytest.raises(ValueError, match="names must differ"):
        scaling.sweep([family[0], family[0]], SMALL, corpus=TEXT)
    with pytest.raises(ValueError, match="at least 2"):
        scaling.sweep(family, SMALL, corpus=Corpus("one", "a"))
    with pytest.raises(ValueError, match="workers"):
        scaling.sweep(family, SMALL, workers=-1, corpus=TEXT)
    monkeypatch.setattr(minilm.model, "available_models", lambda: [])
    with pytest.raises(ValueError, match="no shipped models"):
        scaling.sweep(None, SMALL, corpus=TEXT)
    with pytest.raises(ValueError, match="16 or 32"):
        scaling.quantized_copy(tiny(16, 1, 0), scaling.Cell(8, "float", None))
    assert math.isfinite(scaling.evaluate_cell(tiny(16, 1, 0), scaling.BASELINES[1],
                                               b"ab")["bpb"])
