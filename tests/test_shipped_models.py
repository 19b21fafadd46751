"""The shipped family of checkpoints: present, loadable, recorded, and as good as recorded."""

import pytest

import minilm
from minilm.family import TRAINING_PRESETS, recipe, shipped_table
from minilm.model import CHECKPOINT_DIR
from minilm.run_record import heldout_slice

FAMILY = list(TRAINING_PRESETS)
MAX_TOTAL_MB = 25
BPB_TOLERANCE = 0.01
RECORD_FIELDS = ("command", "settings", "step", "finished", "train_corpus", "heldout",
                 "wall_time_s", "tokens_seen", "final_heldout_bpb", "versions")


def test_the_whole_family_ships_smallest_first():
    assert minilm.available_models() == FAMILY


def test_the_checkpoints_are_small_enough_to_ship():
    total = sum((CHECKPOINT_DIR / f"{name}.npz").stat().st_size for name in FAMILY)
    assert total <= MAX_TOTAL_MB * 1e6, f"{total / 1e6:.1f} MB"
    assert not list(CHECKPOINT_DIR.glob("*.state.npz")), "optimizer state does not ship"


@pytest.mark.parametrize("name", FAMILY)
def test_a_shipped_model_has_its_recipe_and_a_complete_record(name):
    model = minilm.load(name)
    config, settings = recipe(name)
    assert model.config == config
    record = model.meta["training"]
    assert all(field in record for field in RECORD_FIELDS)
    assert record["finished"] and record["step"] == settings.steps
    assert record["settings"]["seed"] == settings.seed
    assert record["command"] == f"minilm train --preset {name} --out runs/{name}.npz"
    assert len(record["train_corpus"]["sha256"]) == 64
    assert record["wall_time_s"] > 0


@pytest.mark.parametrize("name", FAMILY)
def test_a_shipped_model_scores_its_recorded_heldout_bits_per_byte(name):
    model = minilm.load(name)
    heldout = model.meta["training"]["heldout"]
    data, now = heldout_slice(heldout["n_bytes"])
    if now["slice_sha256"] != heldout["slice_sha256"]:
        pytest.skip(f"this Python's held-out text differs from the one {name} was scored on")
    bpb = minilm.evaluate(model, data)
    assert abs(bpb - model.meta["training"]["final_heldout_bpb"]) <= BPB_TOLERANCE


def test_bits_per_byte_fall_as_the_models_grow():
    rows = shipped_table()
    params = [row["params"] for row in rows]
    bpb = [row["heldout_bpb"] for row in rows]
    assert params == sorted(params) and len(set(params)) == len(params)
    assert all(a > b for a, b in zip(bpb, bpb[1:], strict=False)), bpb


def test_the_largest_model_beats_the_4gram_by_15_percent():
    from minilm.baselines import ngram_bpb
    from minilm.corpus import train_corpus

    record = minilm.load(FAMILY[-1]).meta["training"]
    data, now = heldout_slice(record["heldout"]["n_bytes"])
    if now["slice_sha256"] != record["heldout"]["slice_sha256"]:
        pytest.skip("this Python's held-out text differs from the one the family was scored on")
    four_gram = ngram_bpb(train_corpus().text, data, order=4)
    assert record["final_heldout_bpb"] <= 0.85 * four_gram, (record["final_heldout_bpb"],
                                                             four_gram)


def test_generate_uses_the_largest_shipped_model_by_default():
    from minilm.cli import default_model

    assert default_model().n_params == minilm.load(FAMILY[-1]).n_params
