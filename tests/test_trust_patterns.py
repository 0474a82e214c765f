"""The patterns behind many small failures, each fixed across the commands: model text never reaches a JUnit file
or the terminal as control characters, a second run on a folder is refused before any model loads, an
unfinished run is never exported without a word, an option is never silently ignored, and `compare` tells a bug
the other run missed from one it could not have found."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
import yaml
from run_builder import CANDIDATES, build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.report.compare import compare_runs
from blindspots.outputs.suite import build_suite, junit_xml, write_suite
from blindspots.store import RunStore
from blindspots.store.lock import RunLock

HOSTILE = "boat\x1b[2J\x1b]0;owned\x07 on\x00 road\x08\x0c"


def _invoke(*arguments: str):
    return CliRunner().invoke(app, [str(a) for a in arguments], env={"COLUMNS": "300"})


@pytest.fixture
def hostile_suite(tmp_path):
    suite = build_suite(build_run(tmp_path / "run"), images=4)
    suite["bugs"][0]["description"] = HOSTILE
    suite["bugs"][0]["id"] = "bug-\x1b[31mred"
    return write_suite(suite, tmp_path / "bugs.yaml")


def test_control_characters_in_a_description_keep_the_junit_file_parseable(hostile_suite, tmp_path):
    junit = tmp_path / "check.xml"
    result = _invoke("check", hostile_suite, "--classifier", "world:classifier", "--junit", junit)
    assert result.exit_code in (0, 1), result.output
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert any("on road" in name for name in names)
    assert not any(ch in name for name in names for ch in "\x1b\x00\x07\x08\x0c")


def test_control_characters_never_reach_the_terminal(hostile_suite):
    result = _invoke("check", hostile_suite, "--classifier", "world:classifier")
    assert "on road" in result.output
    assert not any(ch in result.output for ch in "\x00\x07\x08\x0c") and "\x1b]0;" not in result.output
    assert "\x1b[2J" not in result.output


def test_junit_xml_drops_what_xml_cannot_hold():
    result = {"classifiers": ["python:x\x01:make"], "cases": [{
        "id": "bug-1", "kind": "bug", "description": HOSTILE,
        "results": {"python:x\x01:make": {"passed": False, "status": "inconclusive", "n": 0}}}]}
    root = ET.fromstring(junit_xml(result))
    assert root.find("testsuite").get("name") == "python:x:make"


def test_a_second_run_on_a_locked_folder_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    marker = tmp_path / "loaded"
    monkeypatch.setenv("BLINDSPOTS_TEST_LOADED", str(marker))
    model = tmp_path / "marking_model.py"
    model.write_text("import os\nfrom pathlib import Path\nfrom blindspots.models.registry import load_model\n\n"
                     "def make():\n    Path(os.environ['BLINDSPOTS_TEST_LOADED']).touch()\n"
                     "    return load_model('classifier', 'world:classifier')\n")
    run_dir = tmp_path / "runs" / "shared"
    run_dir.mkdir(parents=True)
    holder = RunLock.acquire(run_dir)
    try:
        result = _invoke("run", "--classifier", f"python:{model}:make", "--out", tmp_path / "runs", "--run-id",
                         "shared", "--classes", "boat,car")
    finally:
        holder.release()
    assert result.exit_code == 1 and "in use by another blindspots process" in result.output
    assert not marker.exists(), "the models loaded before the lock was asked for"


def test_an_unfinished_run_is_exported_or_made_a_suite_only_when_asked(tmp_path):
    run = build_run(tmp_path / "run", complete=False)
    export = _invoke("export", run, "--out", tmp_path / "set")
    assert export.exit_code == 2 and "not finished" in export.output and "--unfinished" in export.output
    assert not (tmp_path / "set").exists()
    suite = _invoke("suite", run, "-o", tmp_path / "bugs.yaml", "--images", "4")
    assert suite.exit_code == 2 and "--unfinished" in suite.output
    assert _invoke("export", run, "--out", tmp_path / "set", "--unfinished").exit_code == 0
    assert "had not finished" in (tmp_path / "set" / "README.md").read_text()
    assert _invoke("suite", run, "-o", tmp_path / "bugs.yaml", "--images", "4", "--unfinished").exit_code == 0


def test_reading_commands_say_that_a_run_is_unfinished(tmp_path):
    run = build_run(tmp_path / "run", complete=False)
    other = build_run(tmp_path / "other")
    result = _invoke("compare", run, other)
    assert result.exit_code == 0 and "is not finished (status: running)" in result.output


@pytest.mark.parametrize(("arguments", "expected"), [
    (["bench", "discovery", "--budget", "0"], "--budget"),
    (["transfer", "RUN", "--classifier", "world:classifier-b", "--label-map", "truck=car"], "'truck'"),
    (["check", "SUITE", "--classifier", "world:classifier", "--label-map", "truck=car"], "'truck'"),
    (["check", "SUITE", "--classifier", "world:classifier", "--max-images", "0"], "--max-images"),
    (["suite", "RUN", "-o", "OUT", "--margin", "1.5", "--images", "4"], "--margin"),
    (["suite", "RUN", "-o", "OUT", "--top", "0"], "--top"),
])
def test_an_option_is_never_silently_ignored(tmp_path, arguments, expected):
    run = build_run(tmp_path / "run")
    suite = write_suite(build_suite(run, images=4), tmp_path / "bugs.yaml")
    places = {"RUN": run, "SUITE": suite, "OUT": tmp_path / "out.yaml"}
    result = _invoke(*[places.get(a, a) for a in arguments])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_compare_says_not_tested_rather_than_only_in(tmp_path):
    both = build_run(tmp_path / "both")
    boats_only = build_run(tmp_path / "boats", candidates=[c for c in CANDIDATES if c[0] == "boat"])
    with RunStore.open(boats_only) as store:  # a run that tested boats alone
        summary = store.log.summary()
        summary.classes = [c for c in summary.classes if c["name"] == "boat"]
        store.log.finish(summary)
    comparison = compare_runs(both, boats_only)
    assert all(bug.class_name != "car" for bug in comparison.only_a)
    assert comparison.not_tested_in_b and all(bug.class_name == "car" for bug in comparison.not_tested_in_b)
    result = _invoke("compare", both, boats_only)
    assert "of classes not tested in B" in result.output


def test_a_config_error_names_its_file(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"budgett": 10}))
    result = _invoke("run", "--config", config, "--out", tmp_path / "runs")
    assert result.exit_code == 2 and str(config) in result.output
