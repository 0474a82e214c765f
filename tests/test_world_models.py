"""The built-in world's trained models: shipped weights, their card, training determinism, adapters, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.protocols import Captioner, Classifier, Embedder, Generator
from blindspots.models.registry import load_model
from blindspots.world.card import failed_thresholds, model_card
from blindspots.world.folder import FILES
from blindspots.world.parser import parse_prompt
from blindspots.world.renderer import WorldGenerator, render_attributes
from blindspots.world.spec import DEFAULT_SPEC_PATH, load_spec
from blindspots.world.train import (
    TrainPlan,
    find_hard_examples,
    render_training_data,
    train_world,
    with_hard_examples,
)

TINY_PLAN = TrainPlan(biased_images=96, prior_images=96, batch_size=32, max_steps=2, hard_example_images=128)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> Path:
    """A world trained for two steps: wrong answers, but a complete, valid folder."""
    folder = tmp_path_factory.mktemp("worlds") / "tiny"
    train_world(None, folder, seed=7, plan=TINY_PLAN)
    return folder


@pytest.fixture(scope="module")
def shipped_card() -> dict:
    return model_card(None, n=200, seed=2024)


@pytest.fixture(scope="module")
def prior_images() -> list:
    spec = load_spec()
    attributes = spec.sample_prior(np.random.default_rng(5), 40)
    pixels = render_attributes(attributes, list(range(900, 940)), spec=spec)
    from PIL import Image

    return [Image.fromarray(row) for row in pixels]


# ------------------------------------------------------------------------------------ shipped weights

def test_shipped_classifiers_fail_inside_every_spot_and_rarely_outside(shipped_card):
    for key in ("classifier", "classifier_b"):
        section = shipped_card[key]
        assert section["in_distribution_accuracy"] >= 0.92, key
        assert section["outside_failure_rate"] <= 0.08, key
        assert len(section["blind_spots"]) == len(load_spec().blind_spots)
        for spot in section["blind_spots"]:
            assert spot["failure_rate"] >= 0.4, (key, spot)
            assert spot["n"] == 200


def test_shipped_captioner_reads_every_axis(shipped_card):
    accuracy = shipped_card["captioner"]["per_axis_accuracy"]
    assert set(accuracy) == {"class", *load_spec().axes}
    assert min(accuracy.values()) >= 0.85, accuracy


def test_shipped_embedder_zero_shot(shipped_card):
    assert shipped_card["embedder"]["zero_shot_accuracy"] >= 0.9


def test_shipped_world_json_matches_spec_and_files():
    folder = Path(__file__).resolve().parents[1] / "src" / "blindspots" / "world" / "weights"
    meta = json.loads((folder / "world.json").read_text())
    spec = load_spec()
    assert meta["spec_fingerprint"] == spec.fingerprint()
    assert meta["labels"] == spec.classes
    assert sum((folder / name).stat().st_size for name in FILES.values()) <= 20 * 2**20


# ------------------------------------------------------------------------------------------- training

def test_training_is_bit_identical_for_a_seed_and_differs_across_seeds(tiny_world, tmp_path):
    again = tmp_path / "again"
    train_world(None, again, seed=7, plan=TINY_PLAN)
    assert _digests(again) == _digests(tiny_world)
    other = tmp_path / "other"
    train_world(None, other, seed=8, plan=TINY_PLAN)
    assert _digests(other)["classifier.safetensors"] != _digests(tiny_world)["classifier.safetensors"]


def test_trained_folder_is_complete_and_replaces_an_old_one(tiny_world, tmp_path):
    assert {p.name for p in tiny_world.iterdir()} == {*FILES.values(), "world.json", "spec.yaml"}
    target = tmp_path / "world"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    train_world(None, target, seed=7, plan=TINY_PLAN, replace=True)  # a folder holding other files: only so
    assert not (target / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders left behind"


def test_training_from_a_user_spec_copies_it(tmp_path):
    spec_path = tmp_path / "mine.yaml"
    spec_path.write_text(DEFAULT_SPEC_PATH.read_text().replace("train_share: 1.0", "train_share: 0.9"))
    assert load_spec(spec_path).fingerprint() != load_spec().fingerprint()
    folder = tmp_path / "mine"
    train_world(spec_path, folder, seed=1, plan=TINY_PLAN)
    assert (folder / "spec.yaml").read_text() == spec_path.read_text()
    classifier = load_model("classifier", f"world:classifier@{folder}")
    assert classifier.labels == load_spec(spec_path).classes


class _AlwaysSays(torch.nn.Module):
    """A classifier that answers one label whatever it sees."""

    def __init__(self, index: int, n_labels: int):
        super().__init__()
        self.index, self.n_labels = index, n_labels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(pixels.shape[0], self.n_labels)
        logits[:, self.index] = 1.0
        return logits


def test_hard_examples_are_the_rows_a_classifier_gets_wrong_outside_the_spots():
    spec = load_spec()
    plan = TrainPlan(hard_example_images=400)
    says_boat = _AlwaysSays(spec.classes.index("boat"), len(spec.classes))
    says_car = _AlwaysSays(spec.classes.index("car"), len(spec.classes))
    rows, wrong = find_hard_examples(spec, {"boat": says_boat, "car": says_car}, seed=5, plan=plan)
    drawn = spec.sample_prior(np.random.default_rng([5, 3]), 400)  # the stream the docstring names
    outside = [row for row in drawn if spec.spot_of(row) is None]
    assert len(outside) < len(drawn), "the draw should hold some images inside a spot"
    # Inside a spot a failure is the point, so no such row is taken even though both classifiers get it wrong.
    assert rows == outside
    assert wrong == {"boat": sum(row["class"] != "boat" for row in outside),
                     "car": sum(row["class"] != "car" for row in outside)}
    only_boat, wrong_boat = find_hard_examples(spec, {"boat": says_boat}, seed=5, plan=plan)
    assert only_boat == [row for row in outside if row["class"] != "boat"]
    assert wrong_boat == {"boat": len(only_boat)}


def test_hard_examples_join_the_classifiers_set_with_their_own_class():
    spec = load_spec()
    plan = TrainPlan(biased_images=64, prior_images=64, hard_example_copies=3)
    data = render_training_data(spec, 0, plan, with_prior=False)
    assert with_hard_examples(spec, data, [], 0, plan) is data
    rows = [{**spec.sample_prior(np.random.default_rng(1), 1)[0], "class": "lamp"},
            {**spec.sample_prior(np.random.default_rng(2), 1)[0], "class": "cup"}]
    grown = with_hard_examples(spec, data, rows, 0, plan)
    assert grown.hard_rows == 6 and len(grown.biased_images) == 64 + 6
    assert torch.equal(grown.biased_images[:64], data.biased_images)
    lamp, cup = spec.classes.index("lamp"), spec.classes.index("cup")
    assert grown.biased_labels[64:].tolist() == [lamp] * 3 + [cup] * 3
    copies = grown.biased_images[64:67]
    assert not torch.equal(copies[0], copies[1]), "each copy is rendered with its own seed"


def test_a_trained_world_says_what_the_hard_example_search_found(tiny_world):
    meta = json.loads((tiny_world / "world.json").read_text())
    assert meta["plan"]["hard_example_images"] == 128
    found = meta["hard_examples"]
    assert found["searched"] == 128 and found["images"] == 4 * found["rows"]
    assert set(found["wrong"]) == {"classifier", "classifier-b"}
    assert max(found["wrong"].values()) <= found["rows"] <= sum(found["wrong"].values())


def test_the_hard_examples_change_the_classifiers_and_only_them(tiny_world, tmp_path):
    once = tmp_path / "once"
    train_world(None, once, seed=7, plan=replace(TINY_PLAN, hard_example_images=0))
    assert "hard_examples" not in json.loads((once / "world.json").read_text())
    trained_once, with_hard = _digests(once), _digests(tiny_world)
    for name in ("classifier.safetensors", "classifier-b.safetensors"):
        assert trained_once[name] != with_hard[name], f"{name} was not trained again with the hard examples"
    for name in ("captioner.safetensors", "embedder.safetensors"):
        assert trained_once[name] == with_hard[name], f"{name} must not depend on the classifiers' hard examples"


def test_bad_training_plans_are_refused(tmp_path):
    from blindspots.world.train import WorldTrainingError

    with pytest.raises(WorldTrainingError, match="scale"):
        TrainPlan().scaled(0)
    with pytest.raises(WorldTrainingError, match="batch_size"):
        train_world(None, tmp_path / "w", plan=TrainPlan(batch_size=0))
    with pytest.raises(WorldTrainingError, match="hard_example_images must be 0"):
        train_world(None, tmp_path / "w", plan=TrainPlan(hard_example_images=-1))
    with pytest.raises(WorldTrainingError, match="hard_example_copies"):
        train_world(None, tmp_path / "w", plan=TrainPlan(hard_example_copies=0))
    assert TrainPlan(hard_example_images=0).scaled(0.1).hard_example_images == 0, "no search stays no search"
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorldTrainingError, match="is a file"):
        train_world(None, tmp_path / "file", plan=TINY_PLAN)


# ------------------------------------------------------------------------------------------- adapters

def test_adapters_satisfy_the_protocols(tiny_world):
    assert isinstance(load_model("generator", "world:generator"), Generator)
    assert isinstance(load_model("classifier", "world:classifier"), Classifier)
    assert isinstance(load_model("classifier", "world:classifier-b"), Classifier)
    assert isinstance(load_model("captioner", "world:captioner"), Captioner)
    assert isinstance(load_model("embedder", "world:embedder"), Embedder)
    assert isinstance(load_model("classifier", f"world:classifier@{tiny_world}"), Classifier)
    generator = load_model("generator", f"world:generator@{tiny_world}", size=32)
    assert isinstance(generator, WorldGenerator)
    assert generator.generate(["a red boat"], [1])[0].size == (32, 32)


def test_outputs_do_not_depend_on_batch_size(prior_images):
    small = load_model("classifier", "world:classifier", batch_size=7)
    large = load_model("classifier", "world:classifier", batch_size=256)
    probabilities = small.predict(prior_images)
    assert probabilities.shape == (40, len(small.labels)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, large.predict(prior_images), atol=1e-5)
    assert load_model("captioner", "world:captioner", batch_size=3).caption(prior_images) == \
        load_model("captioner", "world:captioner").caption(prior_images)
    np.testing.assert_allclose(load_model("embedder", "world:embedder", batch_size=5).embed_images(prior_images),
                               load_model("embedder", "world:embedder").embed_images(prior_images), atol=1e-5)


def test_predictions_match_between_pil_sizes_and_modes(prior_images):
    classifier = load_model("classifier", "world:classifier")
    rgba = [image.convert("RGBA") for image in prior_images[:8]]
    np.testing.assert_allclose(classifier.predict(rgba), classifier.predict(prior_images[:8]), atol=1e-6)
    assert classifier.predict([]).shape == (0, len(classifier.labels))
    with pytest.raises(TypeError, match="PIL"):
        classifier.predict([np.zeros((64, 64, 3), np.uint8)])


def test_captions_parse_back_to_what_the_captioner_read(prior_images):
    captioner = load_model("captioner", "world:captioner")
    spec = load_spec()
    for attributes, caption in zip(captioner.predict_attributes(prior_images), captioner.caption(prior_images),
                                   strict=True):
        assert parse_prompt(caption, spec).attributes == attributes


def test_embedder_rows_are_unit_float32_and_unknown_words_still_embed(prior_images):
    embedder = load_model("embedder", "world:embedder")
    texts = ["a photo of a boat", "a photo of a boat wearing a tiny hat", "zorblax quux", "", "boats at night"]
    rows = embedder.embed_texts(texts)
    assert rows.shape == (5, 64) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert rows[0] @ rows[1] > 0.8, "unknown words should not move a text far from what it names"
    images = embedder.embed_images(prior_images)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)


def test_zero_shot_prompts_pick_the_rendered_class():
    spec = load_spec()
    generator = WorldGenerator(spec)
    embedder = load_model("embedder", "world:embedder")
    images = generator.generate([f"a photo of a {name}" for name in spec.classes], [11] * len(spec.classes))
    scores = embedder.embed_images(images) @ embedder.embed_texts([f"a photo of a {c}" for c in spec.classes]).T
    assert (scores.argmax(axis=1) == np.arange(len(spec.classes))).mean() >= 0.9


def test_unknown_world_model_names_are_listed():
    with pytest.raises(ModelSpecError, match="world:classifier, world:classifier-b"):
        load_model("classifier", "world:resnet")
    with pytest.raises(ModelSpecError, match="batch_size"):
        load_model("classifier", "world:classifier", batch_size=0)
    with pytest.raises(ModelSpecError, match="options are"):
        load_model("embedder", "world:embedder", temperature=2)


def test_missing_world_folder_names_the_fix(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist.*world train"):
        load_model("classifier", f"world:classifier@{tmp_path / 'nowhere'}")


def test_world_folder_missing_a_file_names_it(tiny_world, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_world, broken)
    (broken / "captioner.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match=r"lacks captioner\.safetensors.*world train --spec"):
        load_model("captioner", f"world:captioner@{broken}")
    shutil.copy(tiny_world / "captioner.safetensors", broken)
    (broken / "classifier.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelUnavailableError, match=r"classifier\.safetensors are damaged.*world train"):
        load_model("classifier", f"world:classifier@{broken}")


def test_weights_from_another_spec_are_refused(tiny_world, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(tiny_world, changed)
    load_model("classifier", f"world:classifier@{changed}")  # cached now; an edit must still be noticed
    spec_file = changed / "spec.yaml"
    spec_file.write_text(spec_file.read_text().replace("spot_share: 0.035", "spot_share: 0.04"))
    with pytest.raises(ModelUnavailableError, match=r"trained for spec .* retrain them with `blindspots world"):
        load_model("classifier", f"world:classifier@{changed}")


# ------------------------------------------------------------------------------------------------ CLI

def test_cli_card_json_has_the_documented_keys():
    result = CliRunner().invoke(app, ["world", "card", "--n", "12", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    for key in ("classifier", "classifier_b"):
        assert {"in_distribution_accuracy", "outside_failure_rate", "blind_spots"} <= set(card[key])
        assert {"name", "failure_rate", "n"} <= set(card[key]["blind_spots"][0])
    assert "class" in card["captioner"]["per_axis_accuracy"]
    assert 0.0 <= card["embedder"]["zero_shot_accuracy"] <= 1.0


def test_cli_card_verify_names_each_missed_target(tiny_world):
    result = CliRunner().invoke(app, ["world", "card", "--world", str(tiny_world), "--n", "10", "--verify"])
    assert result.exit_code == 1
    card = model_card(tiny_world, n=10, seed=0)
    for failure in failed_thresholds(card):
        assert failure.split()[0] in result.output


def _card_with_spots(*spots: tuple[float, float]) -> dict:
    """A passing card whose classifiers have spots of (train_share, failure_rate)."""
    section = {"in_distribution_accuracy": 0.99, "outside_failure_rate": 0.01,
               "blind_spots": [{"name": f"spot{i}", "train_share": share, "failure_rate": rate}
                               for i, (share, rate) in enumerate(spots)]}
    return {"classifier": section, "classifier_b": section, "captioner": {"per_axis_accuracy": {"class": 0.99}},
            "embedder": {"zero_shot_accuracy": 0.99}}


def test_a_partial_spot_is_held_to_its_train_share_and_a_full_one_to_the_floor():
    assert failed_thresholds(_card_with_spots((1.0, 0.9), (0.5, 0.42), (0.3, 0.4))) == []
    missed = failed_thresholds(_card_with_spots((1.0, 0.45), (0.5, 0.9), (0.3, 0.1)))
    assert [m.split(".")[1] for m in missed[:3]] == ["blind_spots[spot0]", "blind_spots[spot1]",
                                                    "blind_spots[spot2]"]
    assert "failure_rate 0.450 < 0.5" in missed[0]
    assert "failure_rate 0.900 is not within 0.15 of the spot's train_share 0.5" in missed[1]


def test_cli_card_rejects_a_non_positive_n():
    result = CliRunner().invoke(app, ["world", "card", "--n", "0"])
    assert result.exit_code == 2
    assert "--n must be a positive" in result.output


def test_cli_train_writes_a_world_and_refuses_a_file_as_out(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli_world"
    result = runner.invoke(app, ["world", "train", "--out", str(out), "--scale", "0.004", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "world.json").is_file() and (out / "spec.yaml").is_file()
    (tmp_path / "a_file").write_text("x")
    result = runner.invoke(app, ["world", "train", "--out", str(tmp_path / "a_file"), "--max-steps", "1"])
    assert result.exit_code == 2
    assert "is a file" in result.output
    result = runner.invoke(app, ["world", "train", "--out", str(out), "--hard-examples", "-5"])
    assert result.exit_code == 2
    assert "--hard-examples must be 0" in result.output
