"""`blindspots classify`: a user checks a classifier spec on their own images before a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_classifiers as tiny
from PIL import Image
from typer.testing import CliRunner

from blindspots.cli.main import app

runner = CliRunner()
TINY_FILE = Path(tiny.__file__).resolve()


def _unwrapped(output: str) -> str:
    """Rich wraps long lines at the terminal width; the words a user reads are the same."""
    return output.replace("\n", "")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name, image in tiny.sample_photos().items():
        paths[name] = folder / f"{name}.jpg"
        image.save(paths[name], quality=95)
    return paths


def test_prints_top_labels_of_real_photographs(photos):
    result = runner.invoke(app, ["classify", "--classifier", "efficientnet-lite:lite0",
                                 str(photos["china"]), str(photos["flower"])])
    assert result.exit_code == 0, result.output
    assert "palace" in result.output and "daisy" in result.output
    assert str(photos["china"]) in _unwrapped(result.output)


def test_json_output_has_the_requested_number_of_ranked_labels(photos):
    result = runner.invoke(app, ["classify", "-c", "efficientnet-lite:lite0", "--top", "3", "--json",
                                 str(photos["flower"])])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    ranked = payload["images"][0]["top"]
    assert [entry["label"] for entry in ranked][0] == "daisy" and len(ranked) == 3
    probabilities = [entry["probability"] for entry in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert payload["classifier"]["spec"] == "efficientnet-lite:lite0"


def test_own_model_and_its_labels(tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (20, 20), (240, 20, 20)).save(red)
    spec = f"python:{TINY_FILE}:make_colour_classifier"
    result = runner.invoke(app, ["classify", "-c", spec, "--json", str(red)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"][0]["top"][0]["label"] == "red"
    listed = runner.invoke(app, ["classify", "-c", spec, "--list-labels"])
    assert listed.stdout.splitlines() == ["0\tred", "1\tgreen", "2\tblue"]


def test_missing_and_unreadable_images_give_one_clear_line(tmp_path):
    spec = f"python:{TINY_FILE}:make_colour_classifier"
    missing = runner.invoke(app, ["classify", "-c", spec, str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 2 and "does not exist" in _unwrapped(missing.output)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    unreadable = runner.invoke(app, ["classify", "-c", spec, str(not_image)])
    assert unreadable.exit_code == 2 and "not an image Pillow can read" in _unwrapped(unreadable.output)
    nothing = runner.invoke(app, ["classify", "-c", spec])
    assert nothing.exit_code == 2 and "at least one image" in _unwrapped(nothing.output)
    assert "Traceback" not in missing.output + unreadable.output + nothing.output


def test_bad_spec_is_reported_without_a_traceback(photos):
    result = runner.invoke(app, ["classify", "-c", "timm:resnet1000", str(photos["china"])])
    assert result.exit_code == 2 and "close names" in _unwrapped(result.output)
