"""Set-ups that cannot be tested are reported, not passed: classes the generator cannot draw stop the run before
its first image, naming them; a classifier with one answer for everything, or one that fails the plain images of
most classes (images outside its domain), stops after the baseline with exit 3 and keeps what was computed; a
single class that fails nearly always is left out of the search with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.pipeline.config import ConfigError
from blindspots.pipeline.health import UNTRUSTWORTHY_EXIT
from blindspots.store import RunStore
from blindspots.world.renderer import WorldGenerator

SMALL = dict(baseline_per_class=40, confirm_per_candidate=16, budget=1500, rounds=1, max_candidates_per_class=2)
PETS = '''import numpy as np

LABELS = ["cat", "dog", "fox"]


class MyClassifier:
    labels = LABELS

    def predict(self, images):
        return np.full((len(images), len(LABELS)), 1 / len(LABELS))


def make_classifier(device: str = "auto", batch_size: int = 64):
    return MyClassifier()
'''


def _run(tmp_path: Path, *arguments: str):
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    return CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "runs"),
                                    "--no-report", *arguments], env={"COLUMNS": "300"})


def test_the_world_says_which_class_words_it_cannot_draw():
    assert WorldGenerator().cannot_draw(["boat", "giraffe", "red car", "cat"]) == ["giraffe", "cat"]


def test_a_class_the_generator_cannot_draw_stops_the_run_before_its_first_image(tmp_path):
    config = tmp_path / "giraffe.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "classes": ["boat", "car", {"name": "giraffe",
                                                                          "accepted": ["plane"]}]}))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    *loading, line = result.output.strip().splitlines()
    assert all(text.startswith("loading the ") for text in loading), "the error is the only other line"
    assert "cannot draw giraffe" in line and "docs/real-models.md" in line
    assert not list((tmp_path / "runs").glob("*")), "a refused run leaves no folder behind"


def test_the_own_model_example_is_stopped_for_what_the_world_cannot_draw(tmp_path, monkeypatch):
    """docs/own-model.md's cat/dog/fox classifier on the built-in world: the world draws no cats, and that,
    not the embedder, is what the user must hear."""
    monkeypatch.chdir(tmp_path)
    Path("my_model.py").write_text(PETS)
    result = CliRunner().invoke(app, ["run", "--classifier", "python:./my_model.py:make_classifier"])
    assert result.exit_code == 2, result.output
    assert "cannot draw cat, dog, fox" in result.output and "same vector" not in result.output


def test_a_classifier_with_one_answer_for_everything_stops_the_run_with_exit_3(tmp_path):
    result = _run(tmp_path, "--classifier", "python:faulty_models:make_one_answer_classifier",
                  "--classes", "boat,car,bird")
    assert result.exit_code == UNTRUSTWORTHY_EXIT, result.output
    assert "answered 'boat' for 120 of 120 baseline images of 3 classes" in result.output
    assert "stopped after the baseline" in result.output and "bug(s) confirmed" not in result.output
    (run_dir,) = (tmp_path / "runs").glob("run-*")
    with RunStore.open(run_dir, read_only=True) as store:
        summary = store.log.summary()
        assert store.samples.images_generated() == 120 and summary.rounds_run == 0
        assert "cannot be tested" in summary.stop_reason and summary.problems


def test_images_outside_the_classifiers_domain_stop_the_run_with_exit_3(tmp_path):
    result = _run(tmp_path, "--classifier", "python:faulty_models:make_shifted_classifier",
                  "--classes", "boat,car,bird,fish")
    assert result.exit_code == UNTRUSTWORTHY_EXIT, result.output
    assert "of 4 of 4 classes more often than max_baseline_failure (80%)" in result.output
    assert "bug(s) confirmed" not in result.output


def test_one_class_failing_nearly_always_is_left_out_with_a_warning(tmp_path):
    result = blindspots.discover(dict(SMALL, classes=["boat", "car", "bird", "fish"], out=str(tmp_path),
                                      classifier="python:faulty_models:make_boat_blind_classifier"))
    assert not result.summary.problems
    (warning,) = result.summary.warnings
    assert warning.startswith("left out of the search: the classifier fails the plain images of boat 100% (at "
                              "least 8")
    with RunStore.open(result.run_dir, read_only=True) as store:
        assert not [c for c in store.candidates.all() if c.class_name == "boat"]


def test_a_photo_classifier_on_the_worlds_drawings_is_not_its_domain(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    result = blindspots.discover(dict(
        SMALL, classifier="efficientnet-lite:lite0", out=str(tmp_path),
        classes=[{"name": "boat", "accepted": ["canoe", "speedboat", "yawl", "catamaran", "lifeboat", "fireboat"]},
                 {"name": "car", "accepted": ["sports car", "cab", "passenger car", "convertible"]},
                 {"name": "bird", "accepted": ["goldfinch", "robin", "jay", "magpie", "house finch", "junco"]}]))
    (problem,) = result.summary.problems
    assert "efficientnet-lite:lite0 fails the plain baseline images of" in problem
    assert "not what it was trained to recognise" in problem
    assert result.summary.rounds_run == 0 and not result.bugs


def test_the_limit_is_a_setting_and_the_review_can_be_turned_into_warnings(tmp_path):
    with pytest.raises(ConfigError, match="max_baseline_failure"):
        blindspots.discover(dict(SMALL, classes=["boat", "car"], max_baseline_failure=0, out=str(tmp_path)))
    result = blindspots.discover(dict(SMALL, classes=["boat", "car", "bird"], review_setup=False,
                                      out=str(tmp_path), classifier="python:faulty_models:make_one_answer_classifier"))
    assert not result.summary.problems and result.summary.rounds_run == 1
    assert any("answered 'boat'" in warning for warning in result.summary.warnings)
