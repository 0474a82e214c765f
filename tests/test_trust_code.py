"""Code runs only where the user asked: a model spec read from a file (a suite, a run folder's config.yaml, a
--config file) may name code only with --trust-code, and even then options reach only a model factory, never
`os:system` and the like. A spec typed on the command line is the user's own; `python:MODULE:FACTORY` finds
MODULE in the working directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.models.errors import ModelSpecError
from blindspots.models.registry import load_model
from blindspots.models.trust import UntrustedCodeError
from blindspots.outputs.suite import build_suite, write_suite
from blindspots.pipeline.config import load_config

TESTS = Path(__file__).resolve().parent
TINY_FILE = TESTS / "tiny_classifiers.py"


def _invoke(*arguments: str):
    return CliRunner().invoke(app, list(arguments))


def _one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def marker(tmp_path):
    """A file that only the attack's command would create."""
    return tmp_path / "PWNED"


@pytest.fixture
def hostile_suite(tmp_path, marker):
    run = build_run(tmp_path / "run")
    suite = build_suite(run, images=4)
    suite["generator"] = {"spec": "python:os:system", "options": {"command": f"touch {marker}"}}
    return write_suite(suite, tmp_path / "bugs.yaml")


def test_a_suite_that_names_code_is_refused_without_trust_code(hostile_suite, marker, tmp_path):
    result = _invoke("check", str(hostile_suite), "--classifier", "world:classifier",
                     "--cache", str(tmp_path / "cache"))
    assert result.exit_code == 2
    line = _one_line(result)
    assert str(hostile_suite) in line and "python:os:system" in line and "--trust-code" in line
    assert not marker.exists()


def test_trust_code_never_lets_options_reach_os_system(hostile_suite, marker, tmp_path):
    result = _invoke("check", str(hostile_suite), "--classifier", "world:classifier", "--trust-code",
                     "--cache", str(tmp_path / "cache"))
    assert result.exit_code == 2
    assert "not a model factory" in _one_line(result)
    assert not marker.exists()


def test_a_run_folders_config_cannot_make_transfer_regenerate_run_code(tmp_path, marker):
    run = build_run(tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["generator"] = "python:os:system"
    config["models"] = {"generator": {"command": f"touch {marker}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = _invoke("transfer", str(run), "--classifier", "world:classifier-b", "--regenerate", "2")
    assert result.exit_code == 2
    line = _one_line(result)
    assert "config.yaml" in line and "python:os:system" in line and "--trust-code" in line
    refused = _invoke("transfer", str(run), "--classifier", "world:classifier-b", "--regenerate", "2",
                      "--trust-code")
    assert refused.exit_code == 2 and "not a model factory" in refused.output
    assert not marker.exists()


def test_a_config_file_names_code_only_with_trust_code(tmp_path, marker):
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef make():\n    return None\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"classifier": f"python:{evil}:make", "classes": ["boat", "car"]}))
    result = _invoke("run", "--config", str(config), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    line = _one_line(result)
    assert str(config) in line and f"python:{evil}:make" in line and "--trust-code" in line
    assert not marker.exists() and not (tmp_path / "runs").exists()
    # With --trust-code the file is imported (and its factory, which returns nothing, is refused).
    trusted = _invoke("run", "--config", str(config), "--out", str(tmp_path / "runs"), "--trust-code")
    assert trusted.exit_code == 2 and marker.exists()


@pytest.mark.parametrize("settings", [
    {"models": {"captioner": {"trust_remote_code": True}}},
    {"executor": "ray", "ray_address": "attacker.example:6379"},
    {"embedder": "python:evil_module:make"},
])
def test_every_setting_that_runs_code_needs_trust_code_in_a_file(tmp_path, settings):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(UntrustedCodeError, match="--trust-code"):
        load_config(path)
    assert load_config(path, trust_code=True)


def test_a_spec_given_by_the_caller_overrides_the_files_and_is_trusted(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"classifier": "python:evil_module:make"}))
    config = load_config(path, classifier="world:classifier")
    assert config.classifier == "world:classifier"
    assert load_config({"classifier": f"python:{TINY_FILE}:make_colour_classifier"}).classifier.startswith("python:")


@pytest.mark.parametrize("spec", [
    "python:os:system",
    "python:subprocess:run",
    "python:builtins:exec",
    "python:shutil:rmtree",
    "python:blindspots.world.train:train_world",
    f"python:{Path(__import__('subprocess').__file__)}:run",
])
def test_only_a_model_factory_is_called(spec):
    with pytest.raises(ModelSpecError, match="not a model factory"):
        load_model("generator", spec, command="true")


def test_a_factory_imported_into_a_users_module_is_not_called(tmp_path):
    module = tmp_path / "reexport.py"
    module.write_text("from subprocess import run as make\nfrom os import system\n")
    for factory in ("make", "system"):
        with pytest.raises(ModelSpecError, match="not a model factory"):
            load_model("generator", f"python:{module}:{factory}", args=["true"])


def test_a_module_in_the_working_directory_loads_by_name(tmp_path, monkeypatch):
    (tmp_path / "tiny_model_here.py").write_text(
        "import numpy as np\n\n"
        "class Constant:\n    labels = ['red', 'green', 'blue']\n\n"
        "    def predict(self, images):\n        return np.full((len(images), 3), 1 / 3)\n\n"
        "def make_colour_classifier():\n    return Constant()\n")
    monkeypatch.chdir(tmp_path)
    # As under the `blindspots` console script: the working directory is not on the Python path.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    classifier = load_model("classifier", "python:tiny_model_here:make_colour_classifier")
    assert list(classifier.labels) == ["red", "green", "blue"]
    assert str(tmp_path) not in sys.path


def test_a_module_that_is_not_there_is_bad_input():
    result = _invoke("classify", "--classifier", "python:no_such_module_anywhere:make", "--list-labels")
    assert result.exit_code == 2
    assert "cannot import module 'no_such_module_anywhere'" in _one_line(result)
