"""Transfer: another classifier re-tests a run's blind spots on the stored images (or on fresh ones), through
the model registry and the executor, and its rates are scored against what it actually predicted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from run_builder import ColourClassifier, build_run, real_tiny_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.bugs import read_bugs
from blindspots.outputs.transfer import TransferError, run_transfer
from blindspots.stats import wilson_interval
from blindspots.store import RunStore
from blindspots.store.records import Purpose


@pytest.fixture(autouse=True)
def colour_classifier(colour_adapter):
    """Every test here transfers to the `colour:` classifier."""


def _bug_rates(results, source="stored"):
    return {bug["description"]: bug["rates"] for bug in results["sources"][source]["bugs"]}


def test_rates_follow_what_the_other_classifier_predicts(tmp_path):
    run = build_run(tmp_path / "run")
    results = run_transfer(run, ["colour:basic"])
    rates = _bug_rates(results)
    # Each bug is its headline ("red boat", found as "red boat on a road"), counted on the headline's images.
    # The colour classifier calls red things cars and yellow things planes: red and yellow boats fool it too,
    # a red car at night does not.
    assert rates["red boat"]["colour:basic"]["rate"] == 1.0
    assert rates["yellow boat"]["colour:basic"]["rate"] == 1.0
    assert rates["car at night"]["colour:basic"]["rate"] == 0.0
    with RunStore.open(run) as store:
        bugs = read_bugs(store)
        bug = next(bug for bug in bugs if bug.description == "red boat")
        assert rates["red boat"]["world:classifier"]["failures"] == bug.headline.failures
        assert [b["id"] for b in results["sources"]["stored"]["bugs"]] == [b.id for b in bugs]
        stored = store.transfer.of("colour:basic")
        samples = store.samples.of(Purpose.CONFIRM, candidate_ids=[bug.headline.id], valid=True)
        images = [store.images.get(s.image_hash) for s in samples]
        assert store.database.get_meta_json("transfer") == results
    labels = ColourClassifier().labels
    called = [labels[i] for i in ColourClassifier().predict(images).argmax(axis=1)]
    assert [stored[s.id].predicted for s in samples] == called
    cell = rates["red boat"]["colour:basic"]
    assert cell["interval"] == pytest.approx(wilson_interval(cell["failures"], cell["n"]))


def test_hard_set_accuracy_counts_every_confirmed_image(tmp_path):
    run = build_run(tmp_path / "run")
    hard = run_transfer(run, ["colour:basic"])["sources"]["stored"]["hard_set"]
    with RunStore.open(run) as store:
        confirmed = [c.id for c in store.candidates.all() if c.confirmed]
        hard_samples = [s for s in store.samples.of(Purpose.CONFIRM, valid=True) if s.candidate_id in confirmed]
        colour = store.transfer.of("colour:basic")
    assert hard["world:classifier"]["n"] == hard["colour:basic"]["n"] == len(hard_samples)
    assert hard["world:classifier"]["correct"] == sum(not s.is_failure for s in hard_samples)
    assert hard["colour:basic"]["correct"] == sum(not colour[s.id].is_failure for s in hard_samples)


def test_repeating_reuses_stored_predictions(tmp_path):
    run = build_run(tmp_path / "run")
    first = run_transfer(run, ["colour:basic"])
    with RunStore.open(run) as store:
        store.database.connection.execute("UPDATE transfer_predictions SET is_failure = 1 - is_failure")
        store.database.connection.commit()
    second = run_transfer(run, ["colour:basic"])  # scored from the stored (here flipped) predictions
    assert _bug_rates(second)["car at night"]["colour:basic"]["rate"] == 1.0
    assert _bug_rates(first)["car at night"]["colour:basic"]["rate"] == 0.0


def test_missing_labels_are_named_with_the_fix(tmp_path):
    run = build_run(tmp_path / "run")
    with pytest.raises(TransferError) as caught:
        run_transfer(run, ["colour:basic", "colour:no-car"])
    message = str(caught.value)
    assert "colour:no-car" in message and "no label 'car' for class 'car'" in message
    assert "--label-map" in message
    with RunStore.open(run) as store:  # checked before any classifier ran: nothing half done
        assert store.database.connection.execute("SELECT COUNT(*) FROM transfer_predictions").fetchone()[0] == 0
        assert store.database.get_meta("transfer") is None


def test_a_label_map_to_a_label_the_classifier_lacks_is_refused(tmp_path):
    run = build_run(tmp_path / "run")
    with pytest.raises(TransferError, match="maps 'car' to 'plain', which classifier colour:no-car does not have"):
        run_transfer(run, ["colour:no-car"], label_map={"car": ["plain"]})


def test_label_map_lets_another_label_space_stand_in(tmp_path):
    run = build_run(tmp_path / "run")
    results = run_transfer(run, ["colour:no-car"], label_map={"car": ["plane"]})
    assert results["label_maps"] == {"colour:no-car": {"car": ["plane"]}}
    # Red cars come out as 'boat' or 'plane' under a model without 'car'; with plane accepted, the baseline
    # failure rate is the share called boat.
    with RunStore.open(run) as store:
        cars = store.samples.of(Purpose.BASELINE, class_name="car", valid=True)
        predicted = store.transfer.of("colour:no-car")
    boat_share = np.mean([predicted[s.id].predicted == "boat" for s in cars])
    assert results["sources"]["stored"]["baseline"]["car"]["colour:no-car"]["rate"] == pytest.approx(boat_share)


def test_regenerate_makes_fresh_images_for_every_model(tmp_path):
    run = build_run(tmp_path / "run", classifier="colour:basic", generator="world:generator")
    results = run_transfer(run, ["colour:no-car"], regenerate=3, label_map={"car": ["plane"]})
    fresh = results["sources"]["regenerated"]
    with RunStore.open(run) as store:
        bugs = read_bugs(store)
        regenerated = store.samples.of(Purpose.REGENERATE)
        base_seeds = {s.seed for purpose in (Purpose.BASELINE, Purpose.CONFIRM) for s in store.samples.of(purpose)}
        outputs = store.database.get_meta("generator_outputs")
    assert len(fresh["bugs"]) == len(bugs)
    assert all(bug["rates"][spec]["n"] == 3 for bug in fresh["bugs"] for spec in ("colour:basic", "colour:no-car"))
    assert len(regenerated) == 3 * len(bugs) + 3 * 2  # and one baseline prompt per class
    assert all(s.image_hash and s.predicted for s in regenerated)
    assert not {s.seed for s in regenerated} & base_seeds
    run_transfer(run, ["colour:no-car"], regenerate=3, label_map={"car": ["plane"]})
    with RunStore.open(run) as store:
        assert store.samples.counts(Purpose.REGENERATE).planned == len(regenerated)
        assert store.database.get_meta("generator_outputs") == outputs  # nothing generated twice


def test_transfer_command_prints_rates_and_rewrites_report(tmp_path):
    run = build_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["transfer", str(run), "--classifier", "colour:basic"])
    assert result.exit_code == 0, result.output
    assert "red boat" in result.output and "accuracy on the hard set" in result.output
    assert "100%" in result.output
    assert "colour:basic" in (run / "report.html").read_text()


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--classifier", "colour:no-car"], "--label-map"),
    (["--classifier", "colour:basic", "--label-map", "car"], "RUN_LABEL=LABEL"),
    (["--classifier", "nosuch:model"], "unknown model prefix"),
    (["--classifier", "colour:basic", "--regenerate", "-1"], "--regenerate"),
    (["--classifier", "world:classifier"], "the classifier this run tested"),
])
def test_transfer_command_errors_are_one_clear_line(tmp_path, arguments, expected):
    run = build_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["transfer", str(run), *arguments])
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    with RunStore.open(run) as store:
        assert store.database.get_meta("transfer") is None
    assert not (run / "report.html").exists()


def test_results_are_json(tmp_path):
    results = run_transfer(build_run(tmp_path / "run"), ["colour:basic"])
    assert json.loads(json.dumps(results)) == results


def test_transfer_command_rejects_a_missing_run(tmp_path):
    result = CliRunner().invoke(app, ["transfer", str(tmp_path / "nope"), "--classifier", "colour:basic"])
    assert result.exit_code == 2 and "no run folder" in result.output
    assert not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_real_run_transfers_to_world_classifier_b(tmp_path):
    run = real_tiny_run(tmp_path / "run")
    results = run_transfer(run, ["world:classifier-b"])
    stored = results["sources"]["stored"]
    with RunStore.open(run) as store:
        bugs = read_bugs(store)
        predictions = store.transfer.of("world:classifier-b")
        accepted = {name: set(labels) for name, labels in store.log.summary().accepted_labels().items()}
        samples = {s.id: s for purpose in Purpose for s in store.samples.of(purpose)}
    assert [b["id"] for b in stored["bugs"]] == [b.id for b in bugs]
    hard = stored["hard_set"]
    assert hard["world:classifier-b"]["n"] == hard[results["target"]]["n"] > 0
    for sample_id, prediction in predictions.items():  # top-1 runs: a failure is a label outside the accepted
        assert prediction.is_failure == (prediction.predicted not in accepted[samples[sample_id].class_name])


def test_transfer_command_prints_model_text_literally(tmp_path):
    from run_builder import HOSTILE_CAPTION

    run = build_run(tmp_path / "run", hostile=True)
    result = CliRunner().invoke(app, ["transfer", str(run), "--classifier", "colour:basic", "--no-report"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"boat {HOSTILE_CAPTION}" in result.output
    assert not (run / "report.html").exists()
