"""Baselines (byte unigram, modified Kneser-Ney n-gram), the family presets, `minilm baselines`."""

import argparse

import numpy as np
import pytest

from minilm import baselines as bl
from minilm.family import TRAINING_PRESETS, recipe
from minilm.params import param_shapes
from minilm.train_cli import add_baselines_parser

TRAIN = ("It is a truth universally acknowledged, that a single man in possession of a good "
         "fortune, must be in want of a wife. ") * 30
HELDOUT = "A single man in possession of a good fortune must be in want of a wife."


def test_unigram_equals_the_smoothed_byte_entropy():
    data = np.frombuffer(TRAIN.encode(), np.uint8)
    probs = (np.bincount(data, minlength=256) + 1) / (data.size + 256)
    expected = -np.log2(probs[data[1:]]).mean()
    assert bl.unigram_bpb(TRAIN, TRAIN) == pytest.approx(expected)
    assert 3.5 < bl.unigram_bpb(TRAIN, HELDOUT) < 5.0


def test_ngram_is_sane_and_better_with_more_context():
    bpb = [bl.ngram_bpb(TRAIN, HELDOUT, order) for order in (1, 2, 4)]
    assert bpb[0] == pytest.approx(bl.unigram_bpb(TRAIN, HELDOUT), abs=0.3)
    assert bpb[0] > bpb[1] > bpb[2] > 0.2  # a 4-gram knows this text well, not perfectly
    unseen = bl.ngram_bpb(TRAIN, "\x00\x01\x02\x03\x04", 4)  # bytes never seen: rarer than
    assert 8.0 < unseen < 16.0  # uniform, but never impossible
    result = bl.baselines(TRAIN, HELDOUT)
    assert set(result) == {"unigram", "4-gram"} and result["4-gram"] == bpb[2]


def test_ngram_probabilities_sum_to_one():
    data = np.frombuffer(TRAIN.encode(), np.uint8).astype(np.int64)
    keys, counts = np.unique(bl._gram_keys(data, 2), return_counts=True)
    order2 = bl._Order(keys, counts)
    for context in (ord("a"), ord(" "), 7):  # seen contexts, and one never seen
        grams = context * 256 + np.arange(256)
        assert order2.interpolate(grams, np.full(256, 1 / 256)).sum() == pytest.approx(1.0)


def test_baseline_errors():
    with pytest.raises(ValueError, match="at least 2 bytes"):
        bl.unigram_bpb("", HELDOUT)
    with pytest.raises(ValueError, match="order must be an int"):
        bl.ngram_bpb(TRAIN, HELDOUT, 0)
    with pytest.raises(TypeError, match="str or bytes"):
        bl.ngram_bpb(TRAIN, 5)


def test_family_grows_from_20k_to_a_few_million_parameters():
    sizes = [sum(int(np.prod(s)) for s in param_shapes(model).values())
             for model, _ in TRAINING_PRESETS.values()]
    assert len(sizes) >= 5 and sizes == sorted(sizes)
    assert 15_000 <= sizes[0] <= 40_000 and 2_000_000 <= sizes[-1] <= 5_000_000
    for model, settings in TRAINING_PRESETS.values():
        assert settings.window(model) == model.max_seq_len
    with pytest.raises(ValueError, match="unknown preset"):
        recipe("minilm-xxl")


def test_cli_baselines(tmp_path, capsys):
    corpus = tmp_path / "train.txt"
    corpus.write_text(TRAIN)
    parser = argparse.ArgumentParser(prog="minilm")
    add_baselines_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["baselines", "--corpus", str(corpus), "--eval-bytes", "3000"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "first 3,000 of" in out and "byte 4-gram (modified Kneser-Ney)" in out
    args = parser.parse_args(["baselines", "--eval-bytes", "1"])
    with pytest.raises(ValueError, match="--eval-bytes must be >= 2"):
        args.run(args)
