"""Regression suites: `suite` writes a run's bugs with fresh seeds and thresholds, `check` re-tests classifiers
on them through the real world generator and the model registry, and gates CI with its exit code."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml
from run_builder import ColourClassifier, build_run
from typer.testing import CliRunner

from blindspots.api import load_result
from blindspots.cli.main import app
from blindspots.models import registry
from blindspots.outputs.suite import (
    SuiteError,
    SuiteImageCache,
    build_suite,
    decide,
    images_to_show_fixed,
    load_suite,
    run_check,
    write_suite,
)
from blindspots.stats import wilson_interval
from blindspots.store import RunStore
from blindspots.store.records import Purpose


@pytest.fixture(autouse=True)
def colour_classifier(colour_adapter):
    """Every test here may check against the `colour:` classifier."""


@pytest.fixture
def suite_file(tmp_path):
    run = build_run(tmp_path / "run")
    return write_suite(build_suite(run, images=12), tmp_path / "bugs.yaml")


def test_suite_holds_the_runs_bugs_with_fresh_seeds_and_thresholds(tmp_path):
    run = build_run(tmp_path / "run")
    suite = load_suite(write_suite(build_suite(run, images=20), tmp_path / "bugs.yaml"))
    with RunStore.open(run) as store:
        rows = load_result(store).bug_rows()
        baseline = store.log.summary().baseline
        used = {(s.prompt, s.seed) for purpose in Purpose for s in store.samples.of(purpose)}
    # The run's bugs, in its order, under its ids, each stated by its headline with the headline's numbers.
    assert [(b["id"], b["description"]) for b in suite["bugs"]] == [(r["id"], r["description"]) for r in rows]
    assert [b["found"]["rate"] for b in suite["bugs"]] == [r["rate"] for r in rows]
    red_boat = next(b for b in suite["bugs"] if b["description"] == "red boat")
    assert red_boat["found_as"] == "red boat on a road"
    assert red_boat["prompts"] == ["a photo of a red boat"] and red_boat["accepted"] == ["boat"]
    assert suite["generator"] == {"spec": "world:generator", "options": {}}
    for case in [*suite["bugs"], *suite["baselines"]]:
        assert len(set(case["seeds"])) == 20
        assert not {(case["prompts"][0], seed) for seed in case["seeds"]} & used  # never the run's own images
        baseline_rate = baseline[case["class"]]["rate"]
        assert case["threshold"] == pytest.approx(baseline_rate + 0.15, abs=1e-4)
    assert {b["class"] for b in suite["baselines"]} == {"boat", "car"}
    assert suite["baselines"][0]["prompts"] == ["a photo of a boat"]


def test_thresholds_can_be_set_per_bug_and_unknown_ones_are_named(tmp_path):
    run = build_run(tmp_path / "run")
    suite = build_suite(run, images=8, thresholds={"bug-1": 0.05, "car at night": 0.5})
    by_id = {b["id"]: b for b in suite["bugs"]}
    assert by_id["bug-1"]["description"] == "red boat"
    assert by_id["bug-1"]["threshold"] == 0.05 and by_id["bug-1"]["threshold_from"] == "set"
    assert next(b for b in suite["bugs"] if b["description"] == "car at night")["threshold"] == 0.5
    # A bug named as a person may type it is the same bug.
    assert {b["id"]: b["threshold"] for b in build_suite(run, images=8, thresholds={"#1": 0.05})["bugs"]}[
        "bug-1"] == 0.05
    assert len(build_suite(run, images=8, top=2)["bugs"]) == 2
    with pytest.raises(ValueError, match="unknown bug.*bug-99"):
        build_suite(run, images=8, thresholds={"bug-99": 0.1})


def test_decision_demands_evidence_that_the_rate_is_below_the_threshold():
    assert decide(3, 117, 0.3)["status"] == "passed"
    straddles = decide(30, 117, 0.3)
    assert straddles["interval"][0] < 0.3 < straddles["interval"][1] and straddles["status"] == "inconclusive"
    assert decide(60, 117, 0.3)["status"] == "above threshold"
    assert not decide(0, 0, 0.3)["passed"]  # no image, no evidence
    assert decide(7, 50, 0.3)["interval"] == pytest.approx(wilson_interval(7, 50))
    # The default size: a model at exactly the baseline rate passes with 90% probability at rate 0.5.
    assert images_to_show_fixed(0.15) == 117
    rng = np.random.default_rng(0)
    passed = [decide(int(k), 117, 0.65)["passed"] for k in rng.binomial(117, 0.5, size=2000)]
    assert 0.85 < np.mean(passed) < 0.97


def test_check_scores_what_each_classifier_predicts_and_reuses_images(suite_file, tmp_path):
    first = run_check(suite_file, ["world:classifier"])
    cache = SuiteImageCache(suite_file.with_name("bugs.images"))
    suite = load_suite(suite_file)
    n_cases = len(suite["bugs"]) + len(suite["baselines"])
    assert first["images"]["generated"] == n_cases * 12
    second = run_check(suite_file, ["colour:basic", "world:classifier"])
    assert second["images"]["generated"] == 0  # a second model costs only classification
    for case, again in zip(first["cases"], second["cases"], strict=True):
        assert case["results"]["world:classifier"] == again["results"]["world:classifier"]
    # The colour classifier's counts are its own predictions on the cached images.
    colour = ColourClassifier()
    for case, spec_case in zip([*suite["bugs"], *suite["baselines"]], second["cases"], strict=True):
        images = [cache.images.get(cache.get(SuiteImageCache.key(suite["generator"], case["prompts"][0], s)))
                  for s in case["seeds"]]
        called = [colour.labels[i] for i in colour.predict(images).argmax(axis=1)]
        failures = sum(label not in case["accepted"] for label in called)
        assert spec_case["results"]["colour:basic"]["failures"] == failures
        assert spec_case["results"]["colour:basic"]["n"] == 12


def test_check_command_exit_codes_junit_and_json(suite_file, tmp_path):
    junit = tmp_path / "out" / "check.xml"
    result = CliRunner().invoke(app, ["check", str(suite_file), "--classifier", "world:classifier",
                                      "--classifier", "colour:basic", "--junit", str(junit), "--json"])
    assert result.exit_code == 1, result.output  # the world classifier still has the red-boat-like bugs
    payload = json.loads(result.stdout)
    assert payload["passed"] is False and payload["classifiers"] == ["world:classifier", "colour:basic"]
    assert payload["versions"]["blindspots"] and payload["config"]["generator"]["spec"] == "world:generator"
    root = ET.parse(junit).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["world:classifier", "colour:basic"]
    for element in suites:
        cases = element.findall("testcase")
        assert len(cases) == len(payload["cases"])
        failed = [c for c in cases if c.find("failure") is not None]
        spec = element.get("name")
        assert len(failed) == sum(not c["results"][spec]["passed"] for c in payload["cases"])
    # Thresholds at 1.0 pass whatever the model does: exit 0.
    suite = yaml.safe_load(suite_file.read_text())
    for case in [*suite["bugs"], *suite["baselines"]]:
        case["threshold"] = 1.0
    suite_file.write_text(yaml.safe_dump(suite))
    passing = CliRunner().invoke(app, ["check", str(suite_file), "--classifier", "world:classifier"])
    assert passing.exit_code == 0, passing.output
    assert "all cases pass" in passing.stdout


def _rewrite(path, **changes):
    suite = yaml.safe_load(path.read_text())
    suite.update(changes)
    path.write_text(yaml.safe_dump(suite))


@pytest.mark.parametrize(("change", "arguments", "expected"), [
    ({"format_version": 99}, [], "suite format 99"),
    ({"generator": {"spec": "nosuch:generator", "options": {}}}, [], "generator nosuch:generator cannot load"),
    ({}, ["--classifier", "colour:no-car"], "--label-map 'car="),
    ({}, ["--label-map", "car"], "RUN_LABEL=LABEL"),
    ({"bugs": "x"}, [], "not a valid suite"),
])
def test_bad_input_is_one_line_with_the_fix(suite_file, tmp_path, change, arguments, expected):
    _rewrite(suite_file, **change)
    result = CliRunner().invoke(app, ["check", str(suite_file), "--classifier", "colour:basic", "--cache",
                                      str(tmp_path / "fresh-cache"), *arguments])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_label_map_lets_a_classifier_without_the_label_be_checked(suite_file):
    result = run_check(suite_file, ["colour:no-car"], label_map={"car": ["plane"]})
    assert {case["class"] for case in result["cases"]} == {"boat", "car"}


def test_a_label_map_to_a_label_the_classifier_lacks_is_refused(suite_file):
    with pytest.raises(SuiteError, match="maps 'car' to 'plain', which classifier colour:no-car does not have"):
        run_check(suite_file, ["colour:no-car"], label_map={"car": ["plain"]})


def test_suite_command_writes_a_readable_file(tmp_path):
    run = build_run(tmp_path / "run")
    out = tmp_path / "suites" / "bugs.yaml"
    result = CliRunner().invoke(app, ["suite", str(run), "-o", str(out), "--images", "10",
                                      "--threshold", "bug-1=0.1"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "&id" not in text and "seeds: [" in text  # no YAML anchors; one seed list per line block
    assert {b["id"]: b["threshold"] for b in load_suite(out)["bugs"]}["bug-1"] == 0.1
    bad = CliRunner().invoke(app, ["suite", str(tmp_path / "missing"), "-o", str(out)])
    assert bad.exit_code == 2 and "no run folder" in bad.output


def test_margin_sets_default_thresholds_and_size_and_a_threshold_file_overrides(tmp_path):
    run = build_run(tmp_path / "run")
    suite = build_suite(run, margin=0.3)
    assert suite["images_per_case"] == images_to_show_fixed(0.3) == 30
    for bug in suite["bugs"]:
        assert bug["threshold"] == pytest.approx(bug["baseline"]["rate"] + 0.3, abs=1e-4)
    overrides = tmp_path / "thresholds.yaml"
    overrides.write_text("bug-1: 0.25\n")
    out = tmp_path / "bugs.yaml"
    result = CliRunner().invoke(app, ["suite", str(run), "-o", str(out), "--images", "5", "--thresholds",
                                      str(overrides)])
    assert result.exit_code == 0, result.output
    assert {b["id"]: b["threshold"] for b in load_suite(out)["bugs"]}["bug-1"] == 0.25
    overrides.write_text("bug-1: high\n")
    bad = CliRunner().invoke(app, ["suite", str(run), "-o", str(out), "--thresholds", str(overrides)])
    assert bad.exit_code == 2 and "bug-13: 0.2" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_a_suite_written_in_format_1_is_read_in_todays_form(tmp_path):
    old = {"format": "blindspots-suite", "format_version": 1, "generator": {"spec": "world:generator"},
           "bugs": [{"id": "bug-5", "class": "boat", "accepted": ["boat"], "prompts": ["a photo of a boat on road"],
                     "seeds": [1, 2], "threshold": 0.3,
                     "description": {"shortest": "boat on road", "full": "blue boat on road at dusk"},
                     "found": {"rate": 1.0, "low": 0.72, "high": 1.0, "n": 16, "q": 3e-08, "excess_low": 0.5,
                               "excess_high": 0.9},
                     "baseline": {"rate": 0.16, "low": 0.1, "high": 0.24, "n": 119, "failures": 19}}],
           "baselines": []}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    bug = load_suite(path)["bugs"][0]
    assert (bug["description"], bug["found_as"]) == ("boat on road", "blue boat on road at dusk")
    assert bug["found"] == {"n": 16, "failures": None, "rate": 1.0, "interval": [0.72, 1.0], "q": 3e-08,
                            "excess_interval": [0.5, 0.9]}
    assert bug["baseline"] == {"n": 119, "failures": 19, "rate": 0.16, "interval": [0.1, 0.24]}


def _unloadable_generator(name: str, **options):
    from blindspots.models.errors import ModelUnavailableError

    raise ModelUnavailableError(f"generator {name} needs a GPU and its weights; neither is here")


def test_cached_images_need_no_generator(suite_file, tmp_path, registered_adapter):
    """A CI machine that cannot load the suite's generator classifies the images a cache folder holds."""
    registered_adapter("gpu-only", "generator", _unloadable_generator)
    _rewrite(suite_file, generator={"spec": "gpu-only:model", "options": {}})
    suite = load_suite(suite_file)
    cache = SuiteImageCache(tmp_path / "ci-cache")
    renderer = registry.load_model("generator", "world:generator")
    for case in [*suite["bugs"], *suite["baselines"]]:
        for seed in case["seeds"]:
            image = renderer.generate([case["prompts"][0]], [seed])[0]
            cache.put(SuiteImageCache.key(suite["generator"], case["prompts"][0], seed), image)
    result = run_check(suite_file, ["world:classifier"], cache_dir=cache.root)
    assert result["images"]["generated"] == 0 and all(c["results"]["world:classifier"]["n"] == 12
                                                      for c in result["cases"])
    empty = CliRunner().invoke(app, ["check", str(suite_file), "--classifier", "world:classifier", "--cache",
                                     str(tmp_path / "empty-cache")])
    assert empty.exit_code == 2 and "gpu-only:model cannot load here" in empty.output
